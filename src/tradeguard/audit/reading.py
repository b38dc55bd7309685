"""Reading entries back: one query shape for `tradeguard audit export|tail` and the API."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from tradeguard.audit import tables
from tradeguard.audit.entry import Entry
from tradeguard.store.engine import text_decoded

__all__ = ["entries_from", "read_entries"]


def read_entries(conn: sa.Connection, query: sa.Select[tuple[object, ...]]) -> Iterator[Entry]:
    """The entries a select over the entries table returns, in its order.

    SQLite keeps any bytes in a text column, and append never writes text that is not UTF-8:
    such bytes were put there behind the log's back. They are shown as U+FFFD here, so that
    export, tail and the API still show the row (verify names it as modified), instead of
    failing on the driver's decode error.
    """
    with text_decoded(conn, "replace"):
        for row in conn.execute(query):
            yield Entry(row.seq, row.ts, row.event, row.actor, row.subject, row.ip, row.details)


def entries_from(conn: sa.Connection, first_seq: int, limit: int) -> list[Entry]:
    """Up to `limit` entries from `first_seq` on, in order (a page of an export)."""
    e = tables.entries
    query = sa.select(e).where(e.c.seq >= first_seq).order_by(e.c.seq).limit(limit)
    return list(read_entries(conn, query))
