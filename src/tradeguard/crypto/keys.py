"""`DataKey`: a 256-bit AES-GCM key in a zeroizing buffer."""

from __future__ import annotations

import contextlib
import os
from typing import ClassVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tradeguard.core.errors import SecretValueError
from tradeguard.secrets import Secret

__all__ = ["KEY_SIZE", "DataKey"]

KEY_SIZE = 32


class DataKey(Secret):
    """A 32-byte AES-256-GCM key: a master key version, a user's DEK, or a password-derived key.

    The AESGCM object built from it is kept while the key lives (building one per decrypt would
    double the cost of a decrypt) and dropped by `wipe()`.
    """

    __slots__ = ("_aead",)

    kind: ClassVar[str] = "data_key"
    _aead: AESGCM

    def _check(self, value: memoryview) -> None:
        if len(value) != KEY_SIZE:
            raise SecretValueError(f"a data key is {KEY_SIZE} bytes, not {len(value)}")

    @classmethod
    def generate(cls) -> DataKey:
        buf = bytearray(os.urandom(KEY_SIZE))
        return cls.adopt(buf)

    def aead(self) -> AESGCM:
        """The cipher for this key (crypto/ only: nothing else touches AES-GCM directly)."""
        self._require_live()
        try:
            return self._aead
        except AttributeError:
            with self.reveal() as view:
                self._aead = AESGCM(view)
            return self._aead

    def wipe(self) -> None:
        with contextlib.suppress(AttributeError):
            del self._aead
        super().wipe()
