"""Reading and checking the entries for `verify`: aligned blocks of the tree, checked in this
process or in worker processes.

`verify` walks the log in blocks that are perfect subtrees of the RFC 6962 tree: 2**14 entries
aligned to their size (after a prune at an unaligned seq, first a few smaller aligned blocks up
to the next multiple of 2**14). What a block holds depends on its own entries alone: each row's
leaf hash and MAC, and the hashes of the complete subtrees inside it. So blocks can be checked
independently and in any order, and `verify` joins their results to the tree in order itself:
the stored subtree hashes, the signed heads, the compact range.

A block's check is all or nothing. When any row in it is not intact (missing, rewritten, moved,
a quote in a plain column, a MAC under an unknown or second key version, a wrong MAC), the block
comes back as None and `verify` reads it again, entry by entry, to name the first damage.

Workers are forked from the verifying process, so the audit keys never leave its memory: only
block numbers go out and hashes come back. Each opens its own connection. On PostgreSQL it reads
inside the verifier's snapshot (`pg_export_snapshot`); SQLite has no shared snapshots, so its
workers read no seq at or past the end the verifier's transaction saw, and rows below it are
append-only (the triggers). Forking is safe only where no other thread may hold a lock the child
needs, so by default processes are used only by a caller that runs no other thread: never inside
the server (nor under `tradeguard audit verify`'s progress bar, which has a thread of its own).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.util import Finalize
from types import TracebackType
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from tradeguard.audit.entry import leaf_data
from tradeguard.audit.keys import AuditKeys, EntryMacKey
from tradeguard.audit.log import STORED_NODE_LEVEL
from tradeguard.audit.merkle import Frontier, leaf_hash
from tradeguard.core.errors import StorageError
from tradeguard.secrets.patterns import redact_text
from tradeguard.store.engine import text_decoded

__all__ = ["BLOCK_BITS", "Block", "BlockChecker", "Task", "fetch_rows", "summarize", "tasks"]

BLOCK_BITS = 14
_PIECE = 512  # rows fetched at a time: hashed while they are still in the CPU's cache
_COLUMNS = "seq, ts, event, actor, subject, ip, details, leaf_hash, key_version, mac"
_RANGE = f"SELECT {_COLUMNS} FROM audit_log WHERE seq >= {{}} AND seq < {{}} ORDER BY seq"  # noqa: S608
_RANGE_SQLITE = _RANGE.format("?", "?")
_RANGE_PG = _RANGE.format("%(start)s", "%(end)s")
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")
_AUTO_MIN_BLOCKS = 4  # below this, forking costs more than it saves
_AUTO_MAX_PROCESSES = 8  # each holds a database connection; more buy little
_IN_FLIGHT_PER_PROCESS = 4  # blocks handed out ahead of the one verify waits for


@dataclass(frozen=True)
class Task:
    """Check entries [start, min(start + 2**bits, limit)); `sizes` are the tree sizes inside
    the block whose compact ranges verify needs (signed heads, a prune's snapshot)."""

    start: int
    bits: int
    limit: int
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class Block:
    """What an intact block adds to the tree."""

    start: int
    bits: int
    count: int  # the entries found from `start` on; fewer than 2**bits: the log ends inside
    # (level, index, hash) of each complete subtree of 2**STORED_NODE_LEVEL leaves or more
    # inside the block: what audit_nodes must hold.
    nodes: list[tuple[int, int, bytes]]
    # size -> the block's part of the compact range at that size, for each of the task's sizes
    # strictly inside the block and, for a short block, for its end.
    edges: dict[int, tuple[bytes, ...]]
    root: bytes | None  # the block's root hash when it is full

    def frontier_at(self, before: Frontier, size: int) -> Frontier:
        """The compact range at `size`, given the one at the block's start."""
        return Frontier(size, [*before.nodes, *self.edges[size]])


def tasks(first: int, limit: int, sizes: Sequence[int]) -> Iterator[Task]:
    """The aligned blocks from `first` on, to `limit`: smaller ones up to the first multiple of
    2**BLOCK_BITS, then whole ones. `sizes` (ascending) go to the block they fall inside."""
    start = first
    i = 0
    while start < limit:
        bits = min(BLOCK_BITS, (start & -start).bit_length() - 1) if start else BLOCK_BITS
        end = start + (1 << bits)
        while i < len(sizes) and sizes[i] <= start:
            i += 1
        inside = []
        while i < len(sizes) and sizes[i] < end:
            inside.append(sizes[i])
            i += 1
        yield Task(start, bits, limit, tuple(inside))
        start = end


def _execute(conn: sa.Connection, start: int, end: int) -> Any:
    """A driver cursor over entries [start, end) in seq order, in this connection's transaction
    (the driver's tuples, not SQLAlchemy rows: verify reads a million of them)."""
    cursor: Any = conn.connection.cursor()  # psycopg's or sqlite3's own
    try:
        if conn.dialect.name == "postgresql":  # binary results: no hex for bytea, no int parsing
            cursor.execute(_RANGE_PG, {"start": start, "end": end}, binary=True)
        else:
            cursor.execute(_RANGE_SQLITE, (start, end))
    except BaseException:
        cursor.close()
        raise
    return cursor


def fetch_rows(conn: sa.Connection, start: int, end: int) -> list[tuple[Any, ...]]:
    """Entries [start, end) in seq order, as the driver's tuples. SQLite keeps any bytes in a
    text column: those that are not UTF-8 come back as lone surrogates (surrogateescape, which
    `leaf_data` encodes back to the same bytes) instead of failing the read, so a row filled
    with them is named like any other damage."""
    with text_decoded(conn, "surrogateescape"):
        cursor = _execute(conn, start, end)
        try:
            return cast(list[tuple[Any, ...]], cursor.fetchall())
        finally:
            cursor.close()


def _any_quoted(*columns: tuple[Any, ...]) -> bool:
    """A quote in a plain column would let two different rows spell the same leaf."""
    try:
        return any('"' in "".join(filter(None, column)) for column in columns)
    except TypeError:  # a value that is not text, which append never writes
        return True


def _intact_leaves(cursor: Any, keys: AuditKeys, start: int) -> list[bytes] | None:
    """The leaf hashes of the rows `cursor` reads when each is entry start, start + 1, ... in
    turn, reproduces its stored leaf hash, has no quote in a plain column and carries a good
    MAC under one key version the keyring holds; None as soon as one does not."""
    leaves: list[bytes] = []
    mac_key: EntryMacKey | None = None
    version = None
    while rows := cursor.fetchmany(_PIECE):
        first = start + len(leaves)
        seqs, _, events, actors, subjects, ips, _, stored, versions, macs = zip(*rows, strict=True)
        if mac_key is None:
            version = versions[0]
            if not keys.has(version):
                return None
            mac_key = keys.mac_key(version)
        piece = [
            leaf_hash(leaf_data(seq, ts, event, actor, subject, ip, details))
            for seq, ts, event, actor, subject, ip, details, _, _, _ in rows
        ]
        if (
            seqs != tuple(range(first, first + len(rows)))
            or versions.count(version) != len(rows)
            or _any_quoted(events, actors, subjects, ips)
            or tuple(piece) != stored
            or tuple(mac_key.macs(first, piece)) != macs
        ):
            return None
        leaves += piece
    return leaves


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


def summarize(task: Task, leaves: list[bytes]) -> Block:
    """The block made of `leaves` (the task's entries, all intact)."""
    start, count = task.start, len(leaves)
    levels = _levels(leaves)
    nodes = [
        (level, (start >> level) + j, node)
        for level in range(STORED_NODE_LEVEL, len(levels))
        for j, node in enumerate(levels[level])
    ]
    full = count == 1 << task.bits
    sizes = [size for size in task.sizes if size < start + count]
    if not full:
        sizes.append(start + count)
    edges = {}
    for size in sizes:
        offset = size - start
        edges[size] = tuple(
            levels[k][(offset >> k) - 1]
            for k in range(offset.bit_length() - 1, -1, -1)
            if offset >> k & 1
        )
    return Block(start, task.bits, count, nodes, edges, levels[task.bits][0] if full else None)


def check(conn: sa.Connection, keys: AuditKeys, task: Task) -> Block | None:
    """The task's block if every entry in it is intact, else None."""
    cursor = _execute(conn, task.start, min(task.start + (1 << task.bits), task.limit))
    try:
        leaves = _intact_leaves(cursor, keys, task.start)
    except sqlite3.OperationalError:  # text that is not UTF-8: `fetch_rows` reads it
        leaves = None  # (any other read error meets verify again there)
    finally:
        cursor.close()
    return None if leaves is None else summarize(task, leaves)


# -- worker processes --------------------------------------------------------------------------

# In a worker process: its connection and keys, or why it could not open them; and the
# parent's connection pool, kept so that its connections are never closed here (SQLite must not
# close a connection opened before the fork; psycopg already leaves them alone).
_worker: tuple[sa.Connection, AuditKeys] | str | None = None
_inherited: list[object] = []


def _start_worker(engine: sa.Engine, keys: AuditKeys, snapshot: str | None) -> None:
    """A worker's own connection, in the verifier's snapshot on PostgreSQL. A failure is kept
    for the first task to raise (with a message verify can pass on), not raised here."""
    global _worker
    try:
        _inherited.append(engine.pool)
        engine.dispose(close=False)  # a pool of the worker's own
        conn = engine.connect()
        if snapshot is not None:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        conn.begin()
        if snapshot is not None:
            conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    except Exception as e:  # noqa: BLE001 - reported by _check_in_worker
        orig = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
        reason = redact_text(str(orig).strip().splitlines()[0]) if str(orig) else ""
        _worker = f"{type(orig).__name__}: {reason}"
        return
    # A worker leaves through os._exit: close the connection the way multiprocessing's
    # children clean up, so PostgreSQL sees a goodbye, not a dropped socket.
    Finalize(conn, conn.close, exitpriority=10)
    _worker = (conn, keys)


def _check_in_worker(task: Task) -> Block | None:
    if not isinstance(_worker, tuple):
        raise StorageError(
            f"an audit verify worker could not read the database ({_worker or 'not started'})"
        )
    return check(*_worker, task)


def _reopenable(engine: sa.Engine) -> bool:
    """Another process can open this database by its URL (a file or a server, not memory)."""
    if engine.dialect.name == "postgresql":
        return True
    database = engine.url.database
    return bool(database) and database != ":memory:" and "mode=memory" not in str(database)


def processes_for(engine: sa.Engine, wanted: int | None, entries: int) -> int:
    """How many worker processes check `entries` entries: `wanted` if given, else one per CPU
    this process may use (at most 8, and at most one per block) when the caller is
    single-threaded and the log is large enough to pay for them; 1 (this process alone) where
    forking cannot work."""
    if "fork" not in multiprocessing.get_all_start_methods() or not _reopenable(engine):
        return 1
    if wanted is not None:
        return max(1, wanted)
    if threading.active_count() > 1 or entries < _AUTO_MIN_BLOCKS << BLOCK_BITS:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return min(cpus, _AUTO_MAX_PROCESSES, entries >> BLOCK_BITS)


class BlockChecker:
    """Checks `todo` in order: in this process on verify's own connection as they are asked
    for, or in worker processes, which start on the first blocks at once and are kept a few
    blocks ahead of the one verify is joining to the tree."""

    def __init__(
        self,
        engine: sa.Engine,
        conn: sa.Connection,
        keys: AuditKeys,
        processes: int,
        todo: Iterator[Task],
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.processes = processes
        self._todo = todo
        self._waiting: deque[tuple[Task, Future[Block | None]]] = deque()
        self._pool: ProcessPoolExecutor | None = None
        if processes > 1:
            snapshot = None
            if conn.dialect.name == "postgresql":
                snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
                if not _SNAPSHOT_ID.fullmatch(snapshot):
                    raise StorageError(f"unexpected PostgreSQL snapshot id {snapshot[:40]!r}")
            self._pool = ProcessPoolExecutor(
                processes,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
                initargs=(engine, keys, snapshot),
            )
            self._hand_out()

    def _hand_out(self) -> None:
        pool = self._pool
        if pool is None:
            return
        while len(self._waiting) < _IN_FLIGHT_PER_PROCESS * self.processes:
            task = next(self._todo, None)
            if task is None:
                return
            self._waiting.append((task, pool.submit(_check_in_worker, task)))

    def checked(self) -> Iterator[tuple[Task, Block | None]]:
        """Each task with its block (None: not intact), in the tasks' order."""
        if self._pool is None:
            for task in self._todo:
                yield task, check(self.conn, self.keys, task)
            return
        while self._waiting:
            task, result = self._waiting.popleft()
            self._hand_out()
            yield task, result.result()

    def __enter__(self) -> BlockChecker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:  # when verify stops early, the blocks not begun are dropped
            self._pool.shutdown(wait=True, cancel_futures=True)
