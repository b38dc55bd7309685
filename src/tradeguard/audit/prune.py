"""Retention: `audit prune` deletes old entries and leaves a signed compact range in their place.

The compact range (frontier) of [0, first_seq) is all the tree needs from the deleted entries:
appending the entries that remain to it reproduces every later root, so `verify` still proves
everything that is left, and tree heads signed before the prune still check. The record is
signed by the audit key; the delete triggers allow deletes only below the newest prune boundary,
and `verify` flags a boundary that the audit key did not sign.

Before it deletes anything, prune verifies the whole log: signing a frontier over tampered
entries would launder them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from tradeguard.audit import tables
from tradeguard.audit.entry import to_micros
from tradeguard.audit.keys import AuditKeys
from tradeguard.audit.merkle import Frontier
from tradeguard.core.errors import TradeguardError

__all__ = [
    "PruneError",
    "PruneRecord",
    "check_retention",
    "cutoff_seq",
    "load_prunes",
    "prune_body",
    "write_prune",
]


class PruneError(TradeguardError):
    """A prune was refused (too recent, or the log does not verify); nothing was deleted."""


def prune_body(origin: str, first_seq: int, frontier: bytes, ts: int) -> bytes:
    root = Frontier.from_bytes(first_seq, frontier).root()
    digest = hashlib.sha256(frontier).digest()
    return (
        f"{origin}\nprune\n{first_seq}\n{base64.b64encode(root).decode()}\n"
        f"{base64.b64encode(digest).decode()}\ntime {ts}\n"
    ).encode()


@dataclass(frozen=True)
class PruneRecord:
    first_seq: int
    ts: int
    frontier_bytes: bytes
    key_version: int
    signature: bytes

    def frontier(self) -> Frontier:
        return Frontier.from_bytes(self.first_seq, self.frontier_bytes)

    def signed_by(self, keys: AuditKeys, origin: str) -> bool:
        try:
            body = prune_body(origin, self.first_seq, self.frontier_bytes, self.ts)
        except ValueError:
            return False  # a frontier of the wrong length: not something we wrote
        return keys.has(self.key_version) and keys.check_signature(
            self.key_version, body, self.signature
        )


def load_prunes(conn: sa.Connection) -> list[PruneRecord]:
    rows = conn.execute(sa.select(tables.prunes).order_by(tables.prunes.c.first_seq))
    return [
        PruneRecord(r.first_seq, r.ts, bytes(r.frontier), r.key_version, bytes(r.signature))
        for r in rows
    ]


def cutoff_seq(conn: sa.Connection, before: datetime) -> int:
    """The first seq to keep: the oldest entry at or after `before` (or the end of the log)."""
    first = conn.execute(
        sa.select(sa.func.min(tables.entries.c.seq)).where(tables.entries.c.ts >= to_micros(before))
    ).scalar_one()
    if first is not None:
        return int(first)
    return int(conn.execute(sa.select(tables.state.c.size)).scalar_one())


def check_retention(before: datetime, now: datetime, minimum_days: int) -> None:
    if before > now - timedelta(days=minimum_days):
        raise PruneError(
            f"refusing to prune entries newer than {minimum_days} days (the configured minimum, "
            "TRADEGUARD_AUDIT_RETENTION_DAYS); pass an older --before"
        )


def write_prune(
    conn: sa.Connection, keys: AuditKeys, origin: str, first_seq: int, frontier: Frontier, ts: int
) -> int:
    """Record the signed boundary and delete the entries below it; how many were deleted."""
    blob = frontier.to_bytes()
    version, signature = keys.sign(prune_body(origin, first_seq, blob, ts))
    conn.execute(
        sa.insert(tables.prunes).values(
            first_seq=first_seq, ts=ts, frontier=blob, key_version=version, signature=signature
        )
    )
    deleted = conn.execute(sa.delete(tables.entries).where(tables.entries.c.seq < first_seq))
    return int(deleted.rowcount)
