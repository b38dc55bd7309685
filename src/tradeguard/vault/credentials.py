"""Credentials as stored: metadata rows and their encrypted fields."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import cast

import sqlalchemy as sa

from tradeguard.core.errors import UnknownCredential
from tradeguard.crypto import Binding
from tradeguard.secrets import Secret
from tradeguard.store.models import Credential, CredentialField, User
from tradeguard.vault.users import owner_of

__all__ = [
    "CredentialInfo",
    "UsedCredential",
    "field_binding",
    "find_credential",
    "list_credentials",
]

credentials = cast(sa.Table, Credential.__table__)
fields_table = cast(sa.Table, CredentialField.__table__)
users = cast(sa.Table, User.__table__)


def field_binding(owner: str, credential_id: str, field: str) -> Binding:
    return Binding(owner, credential_id, field)


@dataclass(frozen=True)
class CredentialInfo:
    """Everything about a credential that may be shown: no field value, only masked ids."""

    id: str
    user_id: int
    user_name: str
    name: str
    venue: str
    display: Mapping[str, str]
    created_at: datetime
    rotated_at: datetime | None
    last_used_at: datetime | None
    # The last key-permission check (venues/keycheck.py): the venue's answer without secrets.
    permissions: Mapping[str, object] | None = None
    permissions_checked_at: datetime | None = None
    key_expires_at: datetime | None = None
    blocked_at: datetime | None = None
    blocked_reason: str | None = None

    @property
    def owner(self) -> str:
        return owner_of(self.user_id)

    @property
    def blocked(self) -> bool:
        return self.blocked_at is not None


def _select() -> sa.Select[tuple[object, ...]]:
    return sa.select(credentials, users.c.name.label("user_name")).join(
        users, users.c.id == credentials.c.user_id
    )


def _info(row: sa.Row[tuple[object, ...]]) -> CredentialInfo:
    m = row._mapping
    return CredentialInfo(
        id=m["id"],
        user_id=m["user_id"],
        user_name=m["user_name"],
        name=m["name"],
        venue=m["venue"],
        display=MappingProxyType(json.loads(m["display"])),
        created_at=m["created_at"],
        rotated_at=m["rotated_at"],
        last_used_at=m["last_used_at"],
        permissions=MappingProxyType(json.loads(m["permissions"])) if m["permissions"] else None,
        permissions_checked_at=m["permissions_checked_at"],
        key_expires_at=m["key_expires_at"],
        blocked_at=m["blocked_at"],
        blocked_reason=m["blocked_reason"],
    )


def list_credentials(conn: sa.Connection, user_id: int | None = None) -> list[CredentialInfo]:
    query = _select().order_by(users.c.name, credentials.c.name)
    if user_id is not None:
        query = query.where(credentials.c.user_id == user_id)
    return [_info(r) for r in conn.execute(query)]


def find_credential(conn: sa.Connection, ref: str, user_id: int | None = None) -> CredentialInfo:
    """By id, or by name (unique per user; ambiguous across users without `user_id`). With
    `user_id`, only that user's credentials are found, by id as well as by name."""
    mine = [] if user_id is None else [credentials.c.user_id == user_id]
    rows = conn.execute(_select().where(credentials.c.id == ref, *mine)).all()
    if not rows:
        rows = conn.execute(_select().where(credentials.c.name == ref, *mine)).all()
    if len(rows) > 1:
        raise UnknownCredential(
            f"several users have a credential named {ref!r}; add --user, or use its id"
        )
    if not rows:
        raise UnknownCredential(f"no credential {ref!r}; list them with `tradeguard vault list`")
    return _info(rows[0])


class UsedCredential:
    """The decrypted fields of one credential, for the length of one signed request.

    Its repr names the venue, the credential and a masked key id, nothing more.
    """

    __slots__ = ("_fields", "info")

    def __init__(self, info: CredentialInfo, fields: dict[str, Secret]) -> None:
        self.info = info
        self._fields = fields

    def __getitem__(self, field: str) -> Secret:
        return self._fields[field]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def wipe(self) -> None:
        for secret in self._fields.values():
            secret.wipe()

    def __repr__(self) -> str:
        key = next(iter(self.info.display.values()), "none")
        return f"Connection(name={self.info.name!r}, venue={self.info.venue!r}, key={key!r})"

    __str__ = __repr__
