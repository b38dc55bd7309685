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

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import sqlalchemy as sa

from tradeguard.audit import tables
from tradeguard.audit.entry import Entry, leaf_data
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
_COLUMNS = "seq, ts, event, actor, subject, ip, details, leaf_hash, key_version, mac"
_RANGE = f"SELECT {_COLUMNS} FROM audit_log WHERE seq >= {{}} AND seq < {{}} ORDER BY seq"  # noqa: S608
_RANGE_SQLITE = _RANGE.format("?", "?")
_RANGE_PG = _RANGE.format("%(start)s", "%(end)s")
_CHUNK_BITS = 16  # entries are checked 65,536 at a time, in chunks aligned to that size
_CHUNK = 1 << _CHUNK_BITS


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
    found = conn.execute(sa.select(tables.entries).where(tables.entries.c.seq == seq)).first()
    return None if found is None else _to_row(found)


def _to_row(raw: Sequence[Any]) -> _Row:
    values: list[Any] = [bytes(v) if isinstance(v, memoryview) else v for v in raw]
    return _Row(Entry(*values[:7]), *values[7:])


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
        if latest is None or self.report.findings:
            return Frontier()  # with a forged boundary, nothing after it can be trusted
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
                self.check_head(_Checkpoint(f"{self.against} line {number}", head, True))
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
            frontier = self.scan(frontier, stored, pending)
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
        self, frontier: Frontier, stored: dict[tuple[int, int], bytes], pending: list[_Checkpoint]
    ) -> Frontier:
        """Check every entry from the frontier's size on, a chunk at a time; the final frontier.

        Per entry: its leaf as stored, and its MAC (which names a changed, moved or forged entry
        exactly); per chunk: the subtree hashes stored for proofs; per head: the root.
        """
        start = frontier.size
        while True:
            end = ((start >> _CHUNK_BITS) + 1) << _CHUNK_BITS
            rows = _fetch(self.conn, start, end)
            leaves = [leaf_hash(leaf_data(*r[:7])) for r in rows]
            if not self.check_entries(start, rows, leaves):
                return frontier
            if start % _CHUNK == 0:
                frontier = self.add_chunk(frontier, leaves, stored, pending)
            else:
                frontier = self.add_leaves(frontier, leaves, stored, pending)
            if self.report.findings:
                return frontier
            if self.progress is not None:
                self.progress(frontier.size)
            if len(rows) < end - start:
                self.check_no_rows_after(frontier.size)
                return frontier
            start = end

    def check_no_rows_after(self, size: int) -> None:
        later = self.conn.execute(
            sa.select(sa.func.min(tables.entries.c.seq)).where(tables.entries.c.seq >= size)
        ).scalar_one()
        if later is not None:
            self.find("deleted", size, f"entries {size} to {later - 1} are missing (deleted)")

    def check_entries(self, start: int, rows: list[tuple[Any, ...]], leaves: list[bytes]) -> bool:
        """Dense seqs, each leaf as stored, no quote in a plain column, each MAC: the first
        entry that fails any of them is the damage named."""
        stored_leaves = [bytes(r[7]) for r in rows]
        dense = not rows or (rows[0][0] == start and rows[-1][0] == start + len(rows) - 1)
        intact = dense and leaves == stored_leaves and not any(_quoted(*r[2:6]) for r in rows)
        if intact and self.macs_hold(start, rows, leaves):
            return True
        for i, (row, leaf) in enumerate(zip(rows, leaves, strict=True)):
            if row[0] != start + i:
                self.find("deleted", start + i, f"entry {start + i} is missing (deleted)")
                return False
            if leaf != stored_leaves[i] or _quoted(*row[2:6]):
                self.classify(_to_row(row))
                return False
            if not self.check_mac(row, leaf):
                return False
        return True  # entry by entry, all held (e.g. a chunk written under two key versions)

    def macs_hold(self, start: int, rows: list[tuple[Any, ...]], leaves: list[bytes]) -> bool:
        """Every MAC of a chunk at once (the usual case: one key version, all intact); False
        sends the chunk through the entry-by-entry check, which has the last word."""
        versions = {r[8] for r in rows}
        if len(versions) != 1 or not self.keys.has(version := versions.pop()):
            return False
        return self.keys.mac_key(version).macs(start, leaves) == [bytes(r[9]) for r in rows]

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

    def add_chunk(
        self,
        frontier: Frontier,
        leaves: list[bytes],
        stored: dict[tuple[int, int], bytes],
        pending: list[_Checkpoint],
    ) -> Frontier:
        """An aligned chunk: hash it level by level (list comprehensions, not an append per
        leaf); the compact range at any size inside it is the frontier at the chunk's start
        followed by one node per set bit of the offset."""
        start = frontier.size
        levels = _levels(leaves)
        for level in range(STORED_NODE_LEVEL, len(levels)):
            first = start >> level
            for j, node in enumerate(levels[level]):
                if not self.check_stored(stored, level, first + j, node):
                    return frontier
        while pending and pending[0].head.size <= start + len(leaves):
            size = pending[0].head.size
            self.check_roots(_inside(frontier, levels, size - start), pending)
            if self.report.findings:
                return frontier
        if self.snapshot_at is not None and start < self.snapshot_at <= start + len(leaves):
            self.report.snapshot = _inside(frontier, levels, self.snapshot_at - start)
        if len(leaves) < _CHUNK:
            return _inside(frontier, levels, len(leaves))
        grown = frontier.copy()
        for level, index, node in grown.append_subtree(_CHUNK_BITS, levels[_CHUNK_BITS][0]):
            if not self.check_stored(stored, level, index, node):
                return frontier
        return grown

    def add_leaves(
        self,
        frontier: Frontier,
        leaves: list[bytes],
        stored: dict[tuple[int, int], bytes],
        pending: list[_Checkpoint],
    ) -> Frontier:
        """Leaf by leaf, up to the next aligned chunk (after a prune at an unaligned seq)."""
        for leaf in leaves:
            for level, index, node in frontier.append(leaf):
                if level >= STORED_NODE_LEVEL and not self.check_stored(stored, level, index, node):
                    return frontier
            if frontier.size == self.snapshot_at:
                self.report.snapshot = frontier.copy()
            self.check_roots(frontier, pending)
            if self.report.findings:
                return frontier
        return frontier

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


def _fetch(conn: sa.Connection, start: int, end: int) -> list[tuple[Any, ...]]:
    """Entries [start, end) in seq order, as the driver's tuples (not ORM rows: verify reads
    a million of them)."""
    cursor = conn.connection.cursor()  # the driver's cursor, in this connection's transaction
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(_RANGE_PG, {"start": start, "end": end})
        else:
            cursor.execute(_RANGE_SQLITE, (start, end))
        return cast(list[tuple[Any, ...]], cursor.fetchall())
    finally:
        cursor.close()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of complete aligned subtrees over `leaves`: levels[k][j] is the hash of
    leaves [j * 2**k, (j + 1) * 2**k)."""
    levels = [leaves]
    current = leaves
    sha256 = hashlib.sha256
    while len(current) > 1:
        pairs = iter(current)
        current = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)  # an odd last one waits
        ]
        levels.append(current)
    return levels


def _inside(frontier: Frontier, levels: list[list[bytes]], offset: int) -> Frontier:
    """The compact range at frontier.size + offset, for an offset inside an aligned chunk."""
    local = [
        levels[k][(offset >> k) - 1]
        for k in range(offset.bit_length() - 1, -1, -1)
        if offset >> k & 1
    ]
    return Frontier(frontier.size + offset, [*frontier.nodes, *local])


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
