"""Wrapping a user's data key (DEK): under the master keyring or under a password-derived key.

The wrapped DEK is an envelope bound to `user:<id>` / `dek` / `master` or `password`, so a
wrapped key copied to another user's row, or from the password slot to the master slot, does
not unwrap.
"""

from __future__ import annotations

from tradeguard.core.errors import IntegrityError, VaultError
from tradeguard.crypto import Binding, DataKey, Envelope, Keyring, decrypt, encrypt
from tradeguard.vault.users import owner_of

__all__ = ["unwrap_master", "unwrap_password", "wrap_master", "wrap_password"]

# A password-derived key has no version of its own (its salt and parameters identify it).
PASSWORD_KEY_VERSION = 1


def _binding(user_id: int, slot: str) -> Binding:
    return Binding(owner_of(user_id), "dek", slot)


def wrap_master(dek: DataKey, user_id: int, keyring: Keyring) -> tuple[bytes, int]:
    """The DEK encrypted under the keyring's primary version, and that version."""
    with dek.reveal() as view:
        wrapped = encrypt(
            keyring.primary_key(), view, _binding(user_id, "master"), key_version=keyring.primary
        )
    return wrapped, keyring.primary


def unwrap_master(
    wrapped: bytes, user_id: int, user_name: str, keyring: Keyring, min_version: int
) -> DataKey:
    envelope = Envelope.parse(wrapped)
    if envelope.key_version < min_version:
        raise VaultError(
            f"the data key of user {user_name} is wrapped with master key version "
            f"{envelope.key_version}, which was retired (minimum {min_version}); restore the "
            "database from before the retirement and run `tradeguard vault rewrap`"
        )
    key = keyring.get(envelope.key_version)
    return decrypt(key, envelope, _binding(user_id, "master"), DataKey)


def wrap_password(dek: DataKey, user_id: int, kek: DataKey) -> bytes:
    with dek.reveal() as view:
        return encrypt(kek, view, _binding(user_id, "password"), key_version=PASSWORD_KEY_VERSION)


def unwrap_password(wrapped: bytes, user_id: int, kek: DataKey) -> DataKey:
    """The DEK, or `IntegrityError` (which, for a well-formed row, means a wrong password)."""
    envelope = Envelope.parse(wrapped)
    if envelope.key_version != PASSWORD_KEY_VERSION:
        raise IntegrityError("a password-wrapped data key has an unexpected key version")
    return decrypt(kek, envelope, _binding(user_id, "password"), DataKey)
