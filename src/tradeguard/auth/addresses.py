"""Where each user logs in and trades from, for the "new address" event and anomaly rules."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast

import sqlalchemy as sa

from tradeguard.store.models import UserAddress

__all__ = ["AddressKind", "known_addresses", "record"]

AddressKind = Literal["login", "trade"]
table = cast(sa.Table, UserAddress.__table__)


def known_addresses(
    conn: sa.Connection, user_id: int, kind: AddressKind = "login"
) -> frozenset[str]:
    rows = conn.execute(
        sa.select(table.c.ip).where(table.c.user_id == user_id, table.c.kind == kind)
    )
    return frozenset(rows.scalars())


def record(conn: sa.Connection, user_id: int, ip: str, kind: AddressKind, now: datetime) -> bool:
    """Count a use of `ip`; True when it is the first from there. Two first uses racing (one
    inserts, the other's insert collides) both count, and neither fails."""
    if _bump(conn, user_id, ip, kind, now):
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                table.insert().values(
                    user_id=user_id, ip=ip, kind=kind, first_seen=now, last_seen=now, count=1
                )
            )
    except sa.exc.IntegrityError:
        _bump(conn, user_id, ip, kind, now)
        return False
    return True


def _bump(conn: sa.Connection, user_id: int, ip: str, kind: AddressKind, now: datetime) -> bool:
    updated = conn.execute(
        table.update()
        .where(table.c.user_id == user_id, table.c.ip == ip, table.c.kind == kind)
        .values(last_seen=now, count=table.c.count + 1)
    ).rowcount
    return bool(updated)
