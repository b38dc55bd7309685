"""Reading entries back: one query shape for `tradeguard audit export|tail` and the API."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from tradeguard.audit import tables
from tradeguard.audit.entry import Entry

__all__ = ["entries_from", "read_entries"]


def read_entries(conn: sa.Connection, query: sa.Select[tuple[object, ...]]) -> Iterator[Entry]:
    """The entries a select over the entries table returns, in its order."""
    for row in conn.execute(query):
        yield Entry(row.seq, row.ts, row.event, row.actor, row.subject, row.ip, row.details)


def entries_from(conn: sa.Connection, first_seq: int, limit: int) -> list[Entry]:
    """Up to `limit` entries from `first_seq` on, in order (a page of an export)."""
    e = tables.entries
    query = sa.select(e).where(e.c.seq >= first_seq).order_by(e.c.seq).limit(limit)
    return list(read_entries(conn, query))
