"""`GroupWriter`: writes off the event loop, grouped into shared commits, each caller seeing
only its own outcome, after the commit (SQLite and PostgreSQL: the `engine` fixture)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from tests.vault.conftest import engine  # SQLite and PostgreSQL

from tradeguard.store.group_writer import GroupWriter

__all__ = ["engine"]  # a fixture, used by name

ROWS = sa.table("group_writer_rows", sa.column("k", sa.Integer))


@pytest.fixture
def writer(engine: sa.Engine) -> GroupWriter:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE group_writer_rows (k INTEGER PRIMARY KEY)"))
    return GroupWriter.for_engine(engine)


def insert(k: int) -> Any:
    def work(conn: sa.Connection) -> int:
        conn.execute(sa.insert(ROWS).values(k=k))
        return k

    return work


def stored(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.scalars(sa.select(ROWS.c.k)))


def test_one_writer_per_engine(engine: sa.Engine, writer: GroupWriter) -> None:
    assert GroupWriter.for_engine(engine) is writer


def test_writes_run_off_the_loop_and_share_commits(engine: sa.Engine, writer: GroupWriter) -> None:
    commits: list[str] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(threading.current_thread().name))

    async def main() -> list[int]:
        return await asyncio.gather(*(writer.run(insert(k)) for k in range(64)))

    assert asyncio.run(main()) == list(range(64))
    assert stored(engine) == list(range(64))
    assert set(commits) == {"group-writer"}  # never on the event loop's thread
    assert len(commits) < 64  # grouped: the writes waiting together share a commit


def test_a_write_that_raises_fails_alone(engine: sa.Engine, writer: GroupWriter) -> None:
    def half_then_fail(conn: sa.Connection) -> int:
        conn.execute(sa.insert(ROWS).values(k=1000))
        raise ValueError("refused")

    async def main() -> list[Any]:
        jobs = [writer.run(insert(k)) for k in range(5)]
        jobs.insert(2, writer.run(half_then_fail))
        jobs.append(writer.run(insert(3)))  # a duplicate key: fails alone too
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:2] == [0, 1]
    assert results[3:6] == [2, 3, 4]
    assert isinstance(results[2], ValueError)
    assert isinstance(results[6], sa.exc.IntegrityError)
    assert stored(engine) == [0, 1, 2, 3, 4]  # nothing of the failed writes is stored


def test_a_write_is_visible_elsewhere_when_run_returns(
    engine: sa.Engine, writer: GroupWriter
) -> None:
    async def main() -> list[int]:
        await writer.run(insert(7))
        return stored(engine)  # another connection, right after

    assert asyncio.run(main()) == [7]


def test_a_caller_canceled_while_queued_writes_nothing(
    engine: sa.Engine, writer: GroupWriter
) -> None:
    release = threading.Event()

    def blocking(conn: sa.Connection) -> None:
        release.wait(10)

    async def main() -> None:
        first = asyncio.ensure_future(writer.run(blocking))
        await asyncio.sleep(0.05)  # the writer thread holds `blocking` now
        queued = asyncio.ensure_future(writer.run(insert(1)))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        release.set()
        await first
        await writer.run(insert(2))

    asyncio.run(main())
    assert stored(engine) == [2]


def test_a_caller_canceled_while_its_write_runs_gets_its_outcome(
    engine: sa.Engine, writer: GroupWriter
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(conn: sa.Connection) -> int:
        started.set()
        release.wait(10)
        conn.execute(sa.insert(ROWS).values(k=5))
        return 5

    outcome: list[int] = []

    async def caller() -> None:
        outcome.append(await writer.run(slow))
        await asyncio.sleep(0)  # its next await: the cancellation lands here

    async def main() -> None:
        task = asyncio.ensure_future(caller())
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()  # the write is running: its caller still learns what happened
        await asyncio.sleep(0.05)
        assert not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert outcome == [5]
    assert stored(engine) == [5]
