"""`audit verify`: recompute the tree from the entries, check everything that commits to it.

What is checked, in one pass over the entries (from the last signed prune boundary, if any):
- every row's leaf hash, recomputed from its columns, and its keyed MAC (which binds the leaf to
  its seq: only the audit key can make one, so a rewritten, moved or forged row shows exactly
  where it is);
- seqs are dense: a gap is a deleted entry;
- the stored subtree hashes (used by proofs) match the entries;
- every stored tree head's signature, and its root against the recomputed tree at its size;
- the tree's size against the appenders' state row and the largest signed head (truncation);
- with `against`, every head in a checkpoint file kept off the host: its signature, and that
  the log still extends it (a shorter log was rolled back; a different root is a fork).

Nothing is repaired: the report names the first damage found, its kind and the seq (or tree
size) where it is. Forks are located between the last published head that still matches and the
first that does not: a head commits to a whole prefix, not to one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from tradeguard.audit import tables
from tradeguard.audit.entry import leaf_data
from tradeguard.audit.heads import TreeHead, origin_of, read_checkpoints
from tradeguard.audit.keys import AuditKeys, entry_mac
from tradeguard.audit.log import STORED_NODE_LEVEL
from tradeguard.audit.merkle import Frontier, leaf_hash
from tradeguard.audit.prune import PruneRecord, load_prunes

__all__ = ["Damage", "Finding", "VerifyReport", "verify"]

Damage = Literal[
    "modified",
    "deleted",
    "inserted",
    "reordered",
    "truncated",
    "forked",
    "bad signature",
    "missing key",
]
_BATCH = 10_000
_COLUMNS = "seq, ts, event, actor, subject, ip, details, leaf_hash, key_version, mac"
_SELECT_SQLITE = f"SELECT {_COLUMNS} FROM audit_log WHERE seq >= ? ORDER BY seq"  # noqa: S608
_SELECT_PG = f"SELECT {_COLUMNS} FROM audit_log WHERE seq >= %(start)s ORDER BY seq"  # noqa: S608


@dataclass(frozen=True)
class Finding:
    kind: Damage
    seq: int | None  # the entry, or for a tree head the size it covers
    message: str


@dataclass
class VerifyReport:
    first_seq: int = 0  # entries below it were pruned (their signed frontier stands in)
    size: int = 0
    heads: int = 0
    checkpoints: int = 0
    root: bytes = b""
    findings: list[Finding] = field(default_factory=list)
    snapshot: Frontier | None = None  # the compact range at `snapshot_at`, for prune

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def entries(self) -> int:
        return self.size - self.first_seq


@dataclass(frozen=True)
class _Row:
    seq: int
    ts: int
    event: str
    actor: str | None
    subject: str | None
    ip: str | None
    details: str
    leaf_hash: bytes
    key_version: int
    mac: bytes

    def leaf_at(self, seq: int) -> bytes:
        return leaf_hash(
            leaf_data(seq, self.ts, self.event, self.actor, self.subject, self.ip, self.details)
        )


@dataclass
class _Checkpoint:
    where: str  # "the database" or "checkpoints.jsonl line 7"
    head: TreeHead


def _rows(conn: sa.Connection, start: int) -> Iterator[tuple[Any, ...]]:
    """Entries from `start` in seq order, streamed (a server-side cursor on PostgreSQL)."""
    # The driver's own rows (tuples), not ORM objects: verify reads a million of them.
    postgres = conn.dialect.name == "postgresql"
    result = conn.execution_options(stream_results=True, yield_per=_BATCH).exec_driver_sql(
        _SELECT_PG if postgres else _SELECT_SQLITE, {"start": start} if postgres else (start,)
    )
    for partition in result.partitions(_BATCH):
        yield from partition


def _row(conn: sa.Connection, seq: int) -> _Row | None:
    found = conn.execute(sa.select(tables.entries).where(tables.entries.c.seq == seq)).first()
    return None if found is None else _to_row(found)


def _to_row(raw: Sequence[Any]) -> _Row:
    values: list[Any] = [bytes(v) if isinstance(v, memoryview) else v for v in raw]
    return _Row(*values)


class _Verifier:
    def __init__(
        self,
        conn: sa.Connection,
        keys: AuditKeys,
        against: Path | None,
        progress: Callable[[int], None] | None,
        snapshot_at: int | None,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.report = VerifyReport()
        self.origin = origin_of(tables.instance_id(conn))
        self.state = conn.execute(sa.select(tables.state)).one()
        self.heads: list[_Checkpoint] = []
        self.against = against
        self.matched = 0  # the largest size whose signed root the entries reproduce
        self.progress = progress
        self.snapshot_at = snapshot_at

    def find(self, kind: Damage, seq: int | None, message: str) -> None:
        self.report.findings.append(Finding(kind, seq, message))

    # -- before the pass: prunes, heads, checkpoints ------------------------------------------

    def start(self) -> Frontier:
        prunes = load_prunes(self.conn)
        for prune in prunes:
            if not prune.signed_by(self.keys, self.origin):
                self.find(
                    "bad signature",
                    prune.first_seq,
                    f"the prune record at seq {prune.first_seq} is not signed by the audit key: "
                    "entries were deleted by someone other than `audit prune`",
                )
        latest: PruneRecord | None = prunes[-1] if prunes else None
        if latest is None:
            return Frontier()
        self.report.first_seq = latest.first_seq
        return latest.frontier()

    def load_heads(self) -> None:
        for row in self.conn.execute(
            sa.select(tables.tree_heads).order_by(tables.tree_heads.c.size)
        ):
            head = TreeHead(
                self.origin,
                row.size,
                bytes(row.root),
                row.ts,
                row.key_version,
                bytes(row.signature),
            )
            self.check_head(_Checkpoint("the database", head))
            self.report.heads += 1
        if self.against is not None:
            for number, head in read_checkpoints(self.against):
                self.check_head(_Checkpoint(f"{self.against} line {number}", head))
                self.report.checkpoints += 1
        self.heads.sort(key=lambda c: c.head.size)

    def check_head(self, checkpoint: _Checkpoint) -> None:
        head = checkpoint.head
        if head.origin != self.origin:
            self.find(
                "forked",
                head.size,
                f"the tree head in {checkpoint.where} belongs to another log ({head.origin})",
            )
        elif not self.keys.has(head.key_version):
            self.find(
                "missing key",
                head.size,
                f"the tree head of size {head.size} in {checkpoint.where} is signed with audit "
                f"key version {head.key_version}, which the keyring ({self.keys.source}) lacks",
            )
        elif not head.signed_by(self.keys):
            self.find(
                "bad signature",
                head.size,
                f"the tree head of size {head.size} in {checkpoint.where} has a bad signature",
            )
        else:
            self.heads.append(checkpoint)

    # -- the pass ----------------------------------------------------------------------------

    def run(self) -> VerifyReport:
        frontier = self.start()
        self.load_heads()
        stored = {
            (r.level, r.idx): bytes(r.hash) for r in self.conn.execute(sa.select(tables.nodes))
        }
        if self.snapshot_at == frontier.size:
            self.report.snapshot = frontier.copy()
        pending = [c for c in self.heads if c.head.size >= frontier.size]
        self.check_roots(frontier, pending)  # a head exactly at the prune boundary
        if not self.report.findings:
            self.scan(frontier, stored, pending)
        self.report.size = frontier.size
        self.report.root = frontier.root()
        if not self.report.findings:
            self.check_end(frontier.size, pending)
        return self.report

    def check_roots(self, frontier: Frontier, pending: list[_Checkpoint]) -> None:
        """Compare the recomputed root with every head at the current size."""
        while pending and pending[0].head.size == frontier.size:
            checkpoint = pending.pop(0)
            if checkpoint.head.root != frontier.root():
                matched = self.last_matching(checkpoint.head.size)
                self.find(
                    "forked",
                    matched,
                    f"the entries do not give the root signed in {checkpoint.where} at size "
                    f"{checkpoint.head.size}: the log was rewritten at or after seq {matched} "
                    "(the last signed size that still matches)",
                )
                return
            self.matched = checkpoint.head.size

    def last_matching(self, _size: int) -> int:
        return max(self.matched, self.report.first_seq)

    def scan(
        self, frontier: Frontier, stored: dict[tuple[int, int], bytes], pending: list[_Checkpoint]
    ) -> None:
        expected = frontier.size
        mac_keys: dict[int, Any] = {}
        append = frontier.append
        for raw in _rows(self.conn, expected):
            seq, ts, event, actor, subject, ip, details, stored_leaf, version, mac = raw
            if seq != expected:
                self.find(
                    "deleted",
                    expected,
                    f"entries {expected} to {seq - 1} are missing (deleted)",
                )
                return
            key = mac_keys.get(version)
            if key is None:
                if not self.keys.has(version):
                    self.find(
                        "missing key",
                        seq,
                        f"entry {seq} is keyed with audit key version {version}, which the "
                        f"keyring ({self.keys.source}) lacks; restore that version",
                    )
                    return
                key = mac_keys[version] = self.keys.mac_key(version)
            leaf = leaf_hash(leaf_data(seq, ts, event, actor, subject, ip, details))
            if (
                leaf != stored_leaf
                or entry_mac(key, seq, leaf) != mac
                or _quoted(event, actor, subject, ip)
            ):
                self.classify(_to_row(raw))
                return
            for level, index, node in append(leaf):
                if level >= STORED_NODE_LEVEL and stored.get((level, index), node) != node:
                    self.find(
                        "modified",
                        index << level,
                        f"the stored hash of entries {index << level} to "
                        f"{((index + 1) << level) - 1} does not match them (proofs would fail)",
                    )
                    return
            expected += 1
            if expected == self.snapshot_at:
                self.report.snapshot = frontier.copy()
            if self.progress is not None and expected % _BATCH == 0:
                self.progress(expected)
            if pending and pending[0].head.size == expected:
                self.check_roots(frontier, pending)
                if self.report.findings:
                    return

    def check_end(self, size: int, pending: list[_Checkpoint]) -> None:
        claims = [(self.state.size, "the audit state row")]
        claims += [(c.head.size, f"a signed tree head in {c.where}") for c in pending]
        for claimed, where in claims:
            if claimed > size:
                self.find(
                    "truncated",
                    size,
                    f"the log ends at seq {size - 1} but {where} covers {claimed} entries: "
                    f"entries from seq {size} on were removed (or the database was rolled back)",
                )
                return

    # -- naming the damage --------------------------------------------------------------------

    def written_at(self, row: _Row, near: int) -> int | None:
        """The seq this row was written at (its MAC says), searching outward from `near`."""
        if _quoted(row.event, row.actor, row.subject, row.ip) or not self.keys.has(row.key_version):
            return None
        key = self.keys.mac_key(row.key_version)
        limit = max(self.state.size, row.seq + 1, near + 1)
        for distance in range(limit + 1):
            for seq in {near - distance, near + distance}:
                if (
                    0 <= seq < limit + 1
                    and row.leaf_at(seq) == row.leaf_hash
                    and (entry_mac(key, seq, row.leaf_hash) == row.mac)
                ):
                    return seq
        return None

    def classify(self, row: _Row) -> None:
        seq = row.seq
        origin = self.written_at(row, seq)
        following = _row(self.conn, seq + 1)
        next_origin = None if following is None else self.written_at(following, seq)
        if origin is None:
            if next_origin == seq or seq >= self.state.size:
                self.find("inserted", seq, f"entry {seq} was inserted: no audit key wrote it")
            else:
                self.find(
                    "modified",
                    seq,
                    f"entry {seq} was modified after it was written (its hash or MAC fails)",
                )
        elif origin > seq:
            moved = _row(self.conn, origin)
            if moved is not None and self.written_at(moved, seq) == seq:
                self.find(
                    "reordered",
                    seq,
                    f"entries {seq} and {origin} were swapped",
                )
            elif next_origin == origin + 1:
                self.find(
                    "deleted",
                    seq,
                    f"{origin - seq} entr{'y' if origin - seq == 1 else 'ies'} from seq {seq} "
                    "were deleted and the later ones renumbered",
                )
            else:
                self.find("reordered", seq, f"entry {seq} holds entry {origin}: moved")
        else:
            self.find(
                "inserted",
                seq,
                f"entry {seq} is a copy of entry {origin}, inserted again",
            )


def _quoted(*values: str | None) -> bool:
    """A quote in a plain column would let two different rows spell the same leaf."""
    return any(v is not None and '"' in v for v in values)


def verify(
    engine: sa.Engine,
    keys: AuditKeys,
    *,
    against: Path | None = None,
    progress: Callable[[int], None] | None = None,
    snapshot_at: int | None = None,
) -> VerifyReport:
    """Check the whole log (and, with `against`, a checkpoint file); never changes anything.

    One read transaction (REPEATABLE READ on PostgreSQL), so appends that land meanwhile are
    not half-seen. `progress` is called with the entries checked so far; `snapshot_at` keeps
    the compact range at that size in the report (prune signs it).
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return _Verifier(conn, keys, against, progress, snapshot_at).run()
