"""`audit prune`: verify, then cut the log at a time, leaving a signed boundary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from tradeguard.audit import tables
from tradeguard.audit.entry import to_micros
from tradeguard.audit.heads import origin_of
from tradeguard.audit.keys import AuditKeys
from tradeguard.audit.prune import PruneError, check_retention, cutoff_seq, write_prune
from tradeguard.audit.verify import verify
from tradeguard.store.engine import for_writing

__all__ = ["PruneError", "PruneResult", "prune"]


@dataclass(frozen=True)
class PruneResult:
    first_seq: int  # entries below it are gone
    deleted: int


def prune(
    engine: sa.Engine, keys: AuditKeys, *, before: datetime, now: datetime, minimum_days: int
) -> PruneResult:
    """Delete entries older than `before` (refused under the retention minimum)."""
    check_retention(before, now, minimum_days)
    with engine.connect() as conn:
        first_seq = cutoff_seq(conn, before)
    report = verify(engine, keys, snapshot_at=first_seq)
    if not report.ok:
        finding = report.findings[0]
        raise PruneError(
            f"refusing to prune: the log does not verify ({finding.kind} at {finding.seq}); "
            "run `tradeguard audit verify` and investigate before deleting anything"
        )
    if first_seq <= report.first_seq:
        return PruneResult(report.first_seq, 0)
    if report.snapshot is None:  # verify reached every seq up to the end, so this is a bug
        raise RuntimeError(f"verify kept no compact range at seq {first_seq}")
    with for_writing(engine.connect()) as conn, conn.begin():
        conn.execute(sa.select(tables.state.c.size).with_for_update()).scalar_one()
        origin = origin_of(tables.instance_id(conn))
        deleted = write_prune(conn, keys, origin, first_seq, report.snapshot, to_micros(now))
    return PruneResult(first_seq, deleted)
