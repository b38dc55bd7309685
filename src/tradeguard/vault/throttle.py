"""Throttling vault unlocks: after a few failures, each attempt waits twice as long as the last.

Counted per user name whether or not the user exists, so a throttled answer tells nothing about
which names are real. Five failures are free; then 1 s, 2 s, 4 s ... up to 15 min between
attempts. A success resets the count. Checked before any Argon2id work is done, so a flood of
guesses costs the server nothing.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import cast

import sqlalchemy as sa

from tradeguard.core.errors import UnlockThrottled
from tradeguard.store.models import UnlockThrottle

__all__ = ["check", "delay_after", "record_failure", "reset"]

FREE_FAILURES = 5
MAX_DELAY_S = 15 * 60
table = cast(sa.Table, UnlockThrottle.__table__)


def delay_after(failures: int) -> float:
    """Seconds that must pass after the last failure before the next attempt."""
    if failures < FREE_FAILURES:
        return 0.0
    return float(min(2 ** (failures - FREE_FAILURES), MAX_DELAY_S))


def _subject(name: str) -> str:
    return name.strip().lower()[:64]


def check(conn: sa.Connection, name: str, now: datetime) -> None:
    row = conn.execute(sa.select(table).where(table.c.subject == _subject(name))).first()
    if row is None:
        return
    wait = delay_after(row.failures) - (now - row.last_failure_at).total_seconds()
    if wait > 0:
        raise UnlockThrottled(
            f"too many failed unlocks for {name!r} ({row.failures}); try again in {wait:.0f} s",
            retry_after=math.ceil(wait),
        )


def record_failure(conn: sa.Connection, name: str, now: datetime) -> None:
    subject = _subject(name)
    updated = conn.execute(
        table.update()
        .where(table.c.subject == subject)
        .values(failures=table.c.failures + 1, last_failure_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(table.insert().values(subject=subject, failures=1, last_failure_at=now))


def reset(conn: sa.Connection, name: str) -> None:
    conn.execute(table.delete().where(table.c.subject == _subject(name)))
