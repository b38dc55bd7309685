"""Argon2id: from a person's vault password to a key that wraps their DEK.

Defaults are RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes). Parameters are
stored with each user, so raising the default later upgrades each user at their next unlock,
and lowering it below OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane) is refused.

argon2-cffi takes the password as `bytes`, so one immutable copy of it exists for the length of
the derivation (and the password arrived as a `str` from the prompt anyway; docs/security.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from tradeguard.crypto.keys import KEY_SIZE, DataKey
from tradeguard.secrets import Secret

__all__ = ["DEFAULT_PARAMS", "MINIMUM_PARAMS", "SALT_SIZE", "KdfParams", "derive_key", "new_salt"]

SALT_SIZE = 16
_MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB: more is a typo that would take the host down
_MAX_PASSES = 64
_MAX_LANES = 64


@dataclass(frozen=True, slots=True)
class KdfParams:
    memory_kib: int
    iterations: int
    lanes: int

    def __post_init__(self) -> None:
        for name in ("memory_kib", "iterations", "lanes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"Argon2id {name} must be an int")
        for name, value, low, high in (
            ("memory_kib", self.memory_kib, 8 * self.lanes, _MAX_MEMORY_KIB),
            ("iterations", self.iterations, 1, _MAX_PASSES),
            ("lanes", self.lanes, 1, _MAX_LANES),
        ):
            if not low <= value <= high:
                raise ValueError(f"Argon2id {name} must be an int from {low} to {high}")

    def weaker_than(self, other: KdfParams) -> bool:
        """True when any cost is below `other`'s: the user's parameters need an upgrade."""
        return (
            self.memory_kib < other.memory_kib
            or self.iterations < other.iterations
            or self.lanes < other.lanes
        )

    def describe(self) -> str:
        return f"m={self.memory_kib} KiB, t={self.iterations}, p={self.lanes}"


DEFAULT_PARAMS = KdfParams(memory_kib=64 * 1024, iterations=3, lanes=4)
MINIMUM_PARAMS = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)


def new_salt() -> bytes:
    return os.urandom(SALT_SIZE)


def derive_key(password: Secret, salt: bytes, params: KdfParams) -> DataKey:
    """The 256-bit key Argon2id derives from `password` with this salt and these parameters."""
    if not isinstance(password, Secret):
        raise TypeError("password must be a Secret (Password), not a plain value")
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes")
    with password.reveal() as view:
        raw = hash_secret_raw(
            secret=view.tobytes(),
            salt=bytes(salt),
            time_cost=params.iterations,
            memory_cost=params.memory_kib,
            parallelism=params.lanes,
            hash_len=KEY_SIZE,
            type=Type.ID,
        )
    return DataKey(raw)
