"""Keep a buffer out of swap with mlock(2), where the OS allows it.

Unprivileged processes may lock only up to RLIMIT_MEMLOCK (often 64 KiB to 8 MiB); a DEK is 32
bytes, so even many unlock sessions fit. When locking fails (limit reached, no libc, another OS)
the key still works and is still zeroed on lock; it just may reach swap, and `doctor` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["lock_buffer", "unlock_buffer"]

log = logging.getLogger(__name__)

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
except OSError:
    _libc = None


def _address(buf: bytearray) -> tuple[int, int]:
    holder = (ctypes.c_char * len(buf)).from_buffer(buf)
    return ctypes.addressof(holder), len(buf)


def lock_buffer(buf: bytearray) -> bool:
    """mlock the pages holding `buf`; False (and a debug line) when the OS refuses."""
    if _libc is None or not buf:
        return False
    address, size = _address(buf)
    if _libc.mlock(ctypes.c_void_p(address), ctypes.c_size_t(size)) != 0:
        log.debug("mlock refused (errno %d): the key may be swapped out", ctypes.get_errno())
        return False
    return True


def unlock_buffer(buf: bytearray) -> None:
    if _libc is not None and buf:
        address, size = _address(buf)
        _libc.munlock(ctypes.c_void_p(address), ctypes.c_size_t(size))
