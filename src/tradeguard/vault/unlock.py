"""Password mode: deriving the key that wraps a user's DEK, and checking a password with it.

A wrong password is detected by the wrapped DEK failing its integrity check; there is no
separate password hash to steal and crack offline faster than the wrapping itself.
"""

from __future__ import annotations

from tradeguard.core.errors import IntegrityError
from tradeguard.crypto import DataKey, KdfParams, derive_key, new_salt
from tradeguard.secrets import Password
from tradeguard.vault.users import UserInfo
from tradeguard.vault.wrapping import unwrap_password, wrap_password

__all__ = ["new_password_wrapping", "unwrap_with_password"]


def new_password_wrapping(
    dek: DataKey, user_id: int, password: Password, params: KdfParams
) -> dict[str, object]:
    """Column values for `users`: the DEK wrapped under a fresh salt and these parameters."""
    salt = new_salt()
    with derive_key(password, salt, params) as kek:
        wrapped = wrap_password(dek, user_id, kek)
    return {
        "wrapped_dek": wrapped,
        "kdf_salt": salt,
        "kdf_memory_kib": params.memory_kib,
        "kdf_iterations": params.iterations,
        "kdf_lanes": params.lanes,
    }


def unwrap_with_password(
    user: UserInfo | None, password: Password, default_params: KdfParams
) -> DataKey | None:
    """The user's DEK, or None for a wrong password. For an unknown user (None) the same
    Argon2id work is done with a throwaway salt, so the two cases take the same time."""
    if user is None or user.kdf_salt is None or user.kdf_params is None:
        derive_key(password, new_salt(), default_params).wipe()
        return None
    with derive_key(password, user.kdf_salt, user.kdf_params) as kek:
        try:
            return unwrap_password(user.wrapped_dek, user.id, kek)
        except IntegrityError:
            return None
