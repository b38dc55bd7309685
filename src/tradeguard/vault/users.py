"""Users as the vault sees them: a name, a vault mode and a wrapped data key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

import sqlalchemy as sa

from tradeguard.core.errors import UnknownUser, VaultError
from tradeguard.crypto import KdfParams
from tradeguard.store.models import User

__all__ = [
    "UserInfo",
    "VaultMode",
    "all_users",
    "check_name",
    "load_user",
    "owner_of",
]

VaultMode = Literal["service", "password"]
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
users = cast(sa.Table, User.__table__)


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    vault_mode: VaultMode
    created_at: datetime
    wrapped_dek: bytes
    dek_version: int
    encryption_key_version: int | None
    kdf_salt: bytes | None
    kdf_params: KdfParams | None

    @property
    def owner(self) -> str:
        return owner_of(self.id)


def owner_of(user_id: int) -> str:
    """How ciphertexts and events name a user: `user:42` (bound into every AAD)."""
    return f"user:{user_id}"


def check_name(name: str, what: str = "user name") -> str:
    """A user or credential name: what `what` says it is, in the message."""
    if not _NAME.fullmatch(name):
        raise VaultError(
            f"a {what} is 1 to 64 characters: lowercase letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def _from_row(row: sa.Row[tuple[object, ...]]) -> UserInfo:
    m = row._mapping
    params = None
    if m["kdf_memory_kib"] is not None:
        params = KdfParams(m["kdf_memory_kib"], m["kdf_iterations"], m["kdf_lanes"])
    return UserInfo(
        id=m["id"],
        name=m["name"],
        vault_mode=m["vault_mode"],
        created_at=m["created_at"],
        wrapped_dek=m["wrapped_dek"],
        dek_version=m["dek_version"],
        encryption_key_version=m["encryption_key_version"],
        kdf_salt=m["kdf_salt"],
        kdf_params=params,
    )


def load_user(conn: sa.Connection, name: str) -> UserInfo:
    row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None:
        raise UnknownUser(f"no user named {name!r}; list them with `tradeguard users list`")
    return _from_row(row)


def all_users(conn: sa.Connection) -> list[UserInfo]:
    return [_from_row(r) for r in conn.execute(sa.select(users).order_by(users.c.id))]
