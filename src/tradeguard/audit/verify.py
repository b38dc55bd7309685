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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from tradeguard.audit import tables
from tradeguard.audit.blocks import (
    Block,
    BlockChecker,
    Task,
    fetch_rows,
    processes_for,
    summarize,
    tasks,
)
from tradeguard.audit.entry import Entry, leaf_data
from tradeguard.audit.heads import TreeHead, origin_of, read_checkpoints
from tradeguard.audit.keys import AuditKeys, entry_mac
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
    processes: int = 1  # worker processes that checked the entries (1: the verifier itself)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def entries(self) -> int:
        return self.size - self.first_seq


@dataclass(frozen=True)
class _Row:
    """A stored entry with what was stored beside it."""

    entry: Entry
    leaf_hash: bytes
    key_version: int
    mac: bytes

    @property
    def seq(self) -> int:
        return self.entry.seq

    def leaf_at(self, seq: int) -> bytes:
        """The leaf this entry would have at `seq` (where was it written?)."""
        return leaf_hash(replace(self.entry, seq=seq).leaf_data())


@dataclass
class _Checkpoint:
    where: str  # "the database" or "checkpoints.jsonl line 7"
    head: TreeHead
    published: bool = False  # from the checkpoint file kept off the host


def _row(conn: sa.Connection, seq: int) -> _Row | None:
    found = fetch_rows(conn, seq, seq + 1)
    return _to_row(found[0]) if found else None


def _to_row(raw: Sequence[Any]) -> _Row:
    values: list[Any] = [bytes(v) if isinstance(v, memoryview) else v for v in raw]
    return _Row(Entry(*values[:7]), *values[7:])


class _Verifier:
    def __init__(
        self,
        engine: sa.Engine,
        conn: sa.Connection,
        keys: AuditKeys,
        against: Path | None,
        progress: Callable[[int], None] | None,
        snapshot_at: int | None,
        processes: int | None,
    ) -> None:
        self.engine = engine
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
        self.processes = processes

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
        if latest is None or self.report.findings:
            return Frontier()  # with a forged boundary, nothing after it can be trusted
        self.report.first_seq = latest.first_seq
        return latest.frontier()

    def read_heads(self) -> list[_Checkpoint]:
        """Every signed head in the database and, with `against`, the checkpoint file: not yet
        checked (`check_head`)."""
        found = []
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
            found.append(_Checkpoint("the database", head))
            self.report.heads += 1
        if self.against is not None:
            for number, head in read_checkpoints(self.against):
                found.append(_Checkpoint(f"{self.against} line {number}", head, True))
                self.report.checkpoints += 1
        return found

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
        heads = self.read_heads()
        stored = {
            (r.level, r.idx): bytes(r.hash) for r in self.conn.execute(sa.select(tables.nodes))
        }
        last = self.conn.execute(sa.select(sa.func.max(tables.entries.c.seq))).scalar_one()
        limit = frontier.size if last is None else max(frontier.size, last + 1)
        sizes = {c.head.size for c in heads}  # the compact ranges the heads need
        if self.snapshot_at is not None:
            sizes.add(self.snapshot_at)
        todo = tasks(frontier.size, limit, sorted(sizes))
        processes = 1
        if not self.report.findings:
            processes = processes_for(self.engine, self.processes, limit - frontier.size)
        with BlockChecker(self.engine, self.conn, self.keys, processes, todo) as checker:
            # Worker processes start on the first blocks while the signatures are checked here.
            self.report.processes = processes
            for checkpoint in heads:
                self.check_head(checkpoint)
            self.heads.sort(key=lambda c: c.head.size)
            if self.snapshot_at == frontier.size:
                self.report.snapshot = frontier.copy()
            pending = [c for c in self.heads if c.head.size >= frontier.size]
            self.check_roots(frontier, pending)  # a head exactly at the prune boundary
            if not self.report.findings:
                frontier = self.scan(frontier, stored, pending, checker)
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
                matched = self.last_matching()
                self.find(
                    "forked",
                    matched,
                    f"the entries do not give the root signed in {checkpoint.where} at size "
                    f"{checkpoint.head.size}: the log was rewritten at or after seq {matched} "
                    "(the last signed size that still matches)",
                )
                return
            # With a checkpoint file, only its heads bound a fork: whoever forked the log with
            # the audit key re-signed the database's heads to match.
            if checkpoint.published or self.against is None:
                self.matched = checkpoint.head.size

    def last_matching(self) -> int:
        return max(self.matched, self.report.first_seq)

    def scan(
        self,
        frontier: Frontier,
        stored: dict[tuple[int, int], bytes],
        pending: list[_Checkpoint],
        checker: BlockChecker,
    ) -> Frontier:
        """Join the checked blocks to the tree in order; the final frontier.

        Per entry: its leaf as stored, and its MAC (which names a changed, moved or forged entry
        exactly); per block: the subtree hashes stored for proofs; per head: the root.
        """
        for task, checked in checker.checked():
            block = checked or self.check_closely(task)
            if block is None:
                return frontier
            frontier = self.add_block(frontier, block, stored, pending)
            if self.report.findings:
                return frontier
            if self.progress is not None:
                self.progress(frontier.size)
            if block.root is None:  # the log ends inside this block
                self.check_no_rows_after(frontier.size)
                return frontier
        return frontier

    def check_no_rows_after(self, size: int) -> None:
        later = self.conn.execute(
            sa.select(sa.func.min(tables.entries.c.seq)).where(tables.entries.c.seq >= size)
        ).scalar_one()
        if later is not None:
            self.find("deleted", size, f"entries {size} to {later - 1} are missing (deleted)")

    def check_closely(self, task: Task) -> Block | None:
        """A block that did not check out at once, entry by entry: the first entry that is
        missing, differs from its leaf, has a quote in a plain column or fails its MAC is the
        damage named (None). If none does (a block written under two key versions), the block."""
        start = task.start
        rows = fetch_rows(self.conn, start, min(start + (1 << task.bits), task.limit))
        leaves = [leaf_hash(leaf_data(*r[:7])) for r in rows]
        for i, (row, leaf) in enumerate(zip(rows, leaves, strict=True)):
            if row[0] != start + i:
                self.find("deleted", start + i, f"entry {start + i} is missing (deleted)")
                return None
            if leaf != bytes(row[7]) or _quoted(*row[2:6]):
                self.classify(_to_row(row))
                return None
            if not self.check_mac(row, leaf):
                return None
        return summarize(task, leaves)

    def check_mac(self, raw: tuple[Any, ...], leaf: bytes) -> bool:
        seq, version = raw[0], raw[8]
        if not self.keys.has(version):
            self.find(
                "missing key",
                seq,
                f"entry {seq} is keyed with audit key version {version}, which the keyring "
                f"({self.keys.source}) lacks; restore that version",
            )
            return False
        if entry_mac(self.keys.mac_key(version), seq, leaf) != bytes(raw[9]):
            self.classify(_to_row(raw))
            return False
        return True

    def add_block(
        self,
        frontier: Frontier,
        block: Block,
        stored: dict[tuple[int, int], bytes],
        pending: list[_Checkpoint],
    ) -> Frontier:
        """Join an intact block to the tree: the subtree hashes stored inside it, the heads
        inside it and at its end, the compact range after it."""
        for level, index, node in block.nodes:
            if not self.check_stored(stored, level, index, node):
                return frontier
        end = block.start + block.count
        while pending and pending[0].head.size < end:
            self.check_roots(block.frontier_at(frontier, pending[0].head.size), pending)
            if self.report.findings:
                return frontier
        snapshot_at = self.snapshot_at
        if snapshot_at is not None and block.start < snapshot_at < end:
            self.report.snapshot = block.frontier_at(frontier, snapshot_at)
        if block.root is None:
            grown = block.frontier_at(frontier, end)
        else:
            grown = frontier.copy()
            for level, index, node in grown.append_subtree(block.bits, block.root):
                if not self.check_stored(stored, level, index, node):
                    return frontier
        if snapshot_at == end:
            self.report.snapshot = grown.copy()
        self.check_roots(grown, pending)
        return grown

    def check_stored(
        self, stored: dict[tuple[int, int], bytes], level: int, index: int, node: bytes
    ) -> bool:
        if stored.get((level, index), node) == node:
            return True
        self.find(
            "modified",
            index << level,
            f"the stored hash of entries {index << level} to {((index + 1) << level) - 1} does "
            "not match them (proofs would fail)",
        )
        return False

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
        e = row.entry
        if _quoted(e.event, e.actor, e.subject, e.ip) or not self.keys.has(row.key_version):
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
            elif following is None or next_origin == origin + 1:
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


def _quoted(event: str, actor: str | None, subject: str | None, ip: str | None) -> bool:
    """A quote in a plain column would let two different rows spell the same leaf."""
    return '"' in f"{event}{actor}{subject}{ip}"


def verify(
    engine: sa.Engine,
    keys: AuditKeys,
    *,
    against: Path | None = None,
    progress: Callable[[int], None] | None = None,
    snapshot_at: int | None = None,
    processes: int | None = None,
) -> VerifyReport:
    """Check the whole log (and, with `against`, a checkpoint file); never changes anything.

    One read transaction (REPEATABLE READ on PostgreSQL), so appends that land meanwhile are
    not half-seen. `progress` is called with the entries checked so far; `snapshot_at` keeps
    the compact range at that size in the report (prune signs it).

    The entries are checked by worker processes forked from this one, one per CPU, when this
    process runs no other thread and the log is large (see `audit.blocks`); `processes` sets
    their number instead (1: none), for a caller that knows forking is safe where it runs.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            verifier = _Verifier(engine, conn, keys, against, progress, snapshot_at, processes)
            return verifier.run()
