"""Reading a secret from a file: the `TRADEGUARD_<NAME>_FILE` settings and keyring files.

The file must be a regular file owned by the user running tradeguard and closed to group and
others. Its bytes go straight into a `Secret`; the read buffer is zeroed afterwards.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tradeguard.core.errors import SecretFileError
from tradeguard.core.permissions import exposure_problem
from tradeguard.secrets.secret import Secret

__all__ = ["MAX_SECRET_FILE", "read_secret_file"]

MAX_SECRET_FILE = 64 * 1024


def _read_all(fd: int, variable: str, path: Path) -> tuple[bytearray, int]:
    """Read the file into one preallocated buffer, and how many bytes it holds.

    The buffer is never resized: a resize may move it and leave a copy nobody can zero.
    """
    buf = bytearray(MAX_SECRET_FILE + 1)
    view = memoryview(buf)
    size = 0
    while size <= MAX_SECRET_FILE:
        n = os.readv(fd, [view[size:]])
        if n == 0:
            break
        size += n
    view.release()
    if size > MAX_SECRET_FILE:
        buf[:] = bytes(len(buf))
        raise SecretFileError(f"{variable}: {path} is larger than 64 KiB; is it the right file?")
    return buf, size


def read_secret_file(variable: str, path: Path) -> Secret:
    """Read a secret from `path`, refusing a file someone else owns or could read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretFileError(
            f"{variable}: {path} does not exist; create it or unset {variable}"
        ) from None
    except OSError as e:
        raise SecretFileError(
            f"{variable}: cannot open {path} ({e.strerror}); check the path"
        ) from None
    try:
        st = os.fstat(fd)  # of the file we opened, so a swapped path cannot slip past the check
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"{variable}: {path} is not a regular file")
        problem = exposure_problem(path, st, "file")
        if problem:
            raise SecretFileError(f"{variable}: {problem}")
        buf, end = _read_all(fd, variable, path)
    finally:
        os.close(fd)
    while end and buf[end - 1] in b"\r\n":  # `echo secret > file` adds a newline
        end -= 1
    try:
        if end == 0:
            raise SecretFileError(f"{variable}: {path} is empty; write the secret into it")
        return Secret(memoryview(buf)[:end])
    finally:
        buf[:] = bytes(len(buf))
