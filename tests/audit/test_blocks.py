"""`verify` reads the log in aligned blocks, in this process or in worker processes: the blocks
cover the log exactly, every head and prune boundary inside or at the edge of one is checked, the
workers read what the verifier's transaction sees, and processes are used only where forking is
safe. (The tamper suite runs every attack through worker processes too.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from tests.audit.conftest import AuditStore

from tradeguard.audit import VerifyReport, blocks, tables, verify
from tradeguard.audit.blocks import BlockChecker, Task, processes_for, tasks
from tradeguard.audit.merkle import ListSource, subtree_root
from tradeguard.audit.retention import PruneResult, prune
from tradeguard.core.errors import StorageError
from tradeguard.core.events import EventName

USED = EventName.VAULT_CREDENTIAL_USED


def fill(store: AuditStore, n: int, head_every: int) -> None:
    with store.log(head_every=head_every) as log:
        for i in range(n):
            log.append(USED, actor=f"user:{i % 3}", subject=f"credential:{i}", details={"n": i})
            store.clock.advance(1)


def same(a: VerifyReport, b: VerifyReport) -> None:
    assert replace(a, processes=1) == replace(b, processes=1)


def test_tasks_are_aligned_blocks_that_cover_the_log() -> None:
    size = 1 << blocks.BLOCK_BITS
    first, limit = 5, 3 * size + 7
    sizes = [6, 7, 8, size - 1, size, size + 1, limit]
    todo = list(tasks(first, limit, sizes))
    starts = [t.start for t in todo]
    assert starts[:4] == [5, 6, 8, 16]  # 1, 2, 8 and 16 entries: each aligned to its size
    assert all(t.start % (1 << t.bits) == 0 and t.bits <= blocks.BLOCK_BITS for t in todo)
    ends = [t.start + (1 << t.bits) for t in todo]
    assert starts[1:] == ends[:-1]
    assert (starts[0], ends[-1]) == (first, 4 * size)
    assert [t.bits for t in todo[-4:]] == [blocks.BLOCK_BITS - 1] + [blocks.BLOCK_BITS] * 3
    assert all(t.limit == limit for t in todo)
    # Each size goes to the block it falls strictly inside; one at a block's edge, to none (the
    # block that ends there checks it).
    assert [(t.start, t.sizes) for t in todo if t.sizes] == [
        (6, (7,)),
        (size // 2, (size - 1,)),
        (size, (size + 1,)),
        (3 * size, (limit,)),
    ]
    assert list(tasks(7, 7, [])) == []


@pytest.mark.parametrize("bits", [0, 1, 3])
def test_heads_inside_blocks_and_at_their_ends(
    audit_store: AuditStore, bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heads every 4 entries with blocks of 1, 2 and 8: heads inside blocks, at block ends
    where the tree's compact range carries (size 16: two blocks of 8 merge), and at the end of
    a log that stops inside a block. The same report from one process and from two."""
    fill(audit_store, 45, head_every=4)
    monkeypatch.setattr(blocks, "BLOCK_BITS", bits)
    alone = verify(audit_store.engine, audit_store.keys, processes=1)
    assert alone.ok, alone.findings
    assert (alone.size, alone.heads, alone.processes) == (45, 12, 1)
    two = verify(audit_store.engine, audit_store.keys, processes=2)
    assert two.processes == 2
    same(alone, two)
    for at in (0, 1, 8, 16, 21, 45):  # what prune signs: the compact range at a size
        with_snapshot = verify(audit_store.engine, audit_store.keys, snapshot_at=at, processes=2)
        assert with_snapshot.snapshot is not None
        assert with_snapshot.snapshot.size == at
        assert with_snapshot.snapshot.root() == root_at(audit_store, at)


def root_at(store: AuditStore, size: int) -> bytes:
    """The root of the first `size` entries, from their stored leaf hashes."""
    e = tables.entries
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(e.c.leaf_hash).order_by(e.c.seq).limit(size))
        leaves = [bytes(leaf) for leaf in found.scalars()]
    return subtree_root(ListSource(leaves), 0, size)


def test_after_an_unaligned_prune(audit_store: AuditStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass starts at the prune boundary, seq 13: blocks of 1 and 2 up to 16, then of 16."""
    began = audit_store.clock.now()
    fill(audit_store, 60, head_every=7)  # entry i is made at began + i s
    audit_store.clock.advance(timedelta(days=100).total_seconds())
    before = began + timedelta(seconds=13)
    monkeypatch.setattr(blocks, "BLOCK_BITS", 4)
    result = prune(
        audit_store.engine,
        audit_store.keys,
        before=before,
        now=audit_store.clock.now(),
        minimum_days=90,
    )
    assert result == PruneResult(13, 13)
    alone = verify(audit_store.engine, audit_store.keys, against=audit_store.checkpoints)
    assert alone.ok, alone.findings
    assert (alone.first_seq, alone.size) == (13, 60)
    two = verify(audit_store.engine, audit_store.keys, against=audit_store.checkpoints, processes=2)
    same(alone, two)


def test_workers_read_what_the_verifiers_transaction_sees(audit_store: AuditStore) -> None:
    """Entries appended after the verifier's transaction began are not in its blocks: on
    PostgreSQL the workers import its snapshot, on SQLite they stop at the end it saw."""
    fill(audit_store, 20, head_every=100)
    engine = audit_store.engine
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            assert conn.exec_driver_sql("SELECT count(*) FROM audit_log").scalar_one() == 20
            # On SQLite the limit is what keeps a worker's view to the verifier's: give
            # PostgreSQL none, so only the imported snapshot can.
            limit = 20 if conn.dialect.name == "sqlite" else 1 << 40

            def appended_first() -> Iterator[Task]:
                fill(audit_store, 5, head_every=100)  # committed before a worker exists
                yield Task(0, 5, limit, ())

            with BlockChecker(engine, conn, audit_store.keys, 2, appended_first()) as checker:
                [(_, block)] = list(checker.checked())
    assert block is not None
    assert block.count == 20


def test_processes_only_where_forking_is_safe(audit_store: AuditStore) -> None:
    engine = audit_store.engine
    big = 1 << 30
    assert processes_for(engine, 3, 10) == 3  # asked for: the caller vouches for forking here
    assert processes_for(engine, None, 10) == 1  # a small log: not worth a fork
    assert 1 <= processes_for(engine, None, big) <= 8  # one per CPU, a connection each
    assert processes_for(engine, None, 5 << blocks.BLOCK_BITS) <= 5  # one per block at most
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert processes_for(engine, None, big) == 1  # another thread might hold a lock
    finally:
        stop.set()
        other.join()
    in_memory = sa.create_engine("sqlite://")
    try:
        assert processes_for(in_memory, 2, big) == 1  # no other process can open it
    finally:
        in_memory.dispose()


def test_a_worker_that_cannot_connect_fails_verify_with_the_reason(
    audit_store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a hang (a pool restarting a worker whose start fails, forever) and not a bare
    BrokenProcessPool: the first block raises a StorageError that says why."""
    fill(audit_store, 10, head_every=100)
    engine = audit_store.engine
    with engine.connect() as conn, conn.begin():

        def refuse() -> sa.Connection:
            raise OSError("no more connections for you")

        monkeypatch.setattr(engine, "connect", refuse)  # in the workers, forked from here
        checker = BlockChecker(engine, conn, audit_store.keys, 2, iter([Task(0, 5, 10, ())]))
        with checker, pytest.raises(StorageError, match="OSError: no more connections for you"):
            list(checker.checked())
