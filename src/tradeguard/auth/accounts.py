"""Accounts as the login side sees them: role, email, password hash, second factor (its
secret sealed by tradeguard.vault.second_factor)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import cast

import sqlalchemy as sa

from tradeguard.core.errors import AuthError, NotFound
from tradeguard.store.models import User
from tradeguard.vault.users import owner_of

__all__ = [
    "Account",
    "Role",
    "by_id",
    "by_login",
    "check_email",
]

users = cast(sa.Table, User.__table__)
# Deliberately plain: one @, no spaces or control characters, a dot in the domain. Deliverability
# is proven by the mail, not by a regular expression.
_EMAIL = re.compile(
    r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,189}\.[^@\s\x00-\x1f\x7f.]{2,63}"
)


class Role(StrEnum):
    ADMIN = "admin"  # manages users and reads the audit log; must use a second factor
    TRADER = "trader"  # runs bots and holds credentials, their own only
    VIEWER = "viewer"  # reads their own bots, orders and positions; changes nothing


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: Role
    email: str | None
    password_hash: str | None = field(repr=False)  # never in a traceback's locals
    totp_enabled: bool
    totp_secret: bytes | None = field(repr=False)
    totp_last_step: int | None
    disabled: bool
    vault_mode: str
    created_at: datetime

    @property
    def owner(self) -> str:
        return owner_of(self.id)

    @property
    def can_log_in(self) -> bool:
        return self.password_hash is not None and not self.disabled


def check_email(email: str) -> str:
    """An address as stored: trimmed, lowercased; refused if it cannot be one."""
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise AuthError("give one email address, such as alice@example.com")
    return email


def _from_row(row: sa.Row[tuple[object, ...]]) -> Account:
    m = row._mapping
    return Account(
        id=m["id"],
        name=m["name"],
        role=Role(m["role"]),
        email=m["email"],
        password_hash=m["password_hash"],
        totp_enabled=m["totp_enabled_at"] is not None,
        totp_secret=m["totp_secret"],
        totp_last_step=m["totp_last_step"],
        disabled=m["disabled_at"] is not None,
        vault_mode=m["vault_mode"],
        created_at=m["created_at"],
    )


def by_id(conn: sa.Connection, user_id: int) -> Account:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"no user with id {user_id}")
    return _from_row(row)


def by_login(conn: sa.Connection, login: str) -> Account | None:
    """The account a login names: its user name, or its email when the login has an @."""
    login = login.strip().lower()
    # No name or address holds a NUL (check_name, check_email), and PostgreSQL refuses one in
    # any text it is sent: asking would be a 500 where the answer is "no such account".
    if not login or len(login) > 254 or "\x00" in login:
        return None
    column = users.c.email if "@" in login else users.c.name
    row = conn.execute(sa.select(users).where(column == login)).first()
    return None if row is None else _from_row(row)
