"""`GroupWriter`: one database's small write transactions, off the event loop, grouped.

    writer = GroupWriter.for_engine(engine)          # one per engine (and so per database)
    order = await writer.run(place, lock=account_id)  # place(conn) -> its result, once committed

The order path writes twice per order beside the audit log: the risk journal's row (stored
before the order is sent) and the paper venue's order. Run on the event loop, each write blocks
every bot's orders for a commit (on SQLite with synchronous=FULL, an fsync: ~0.4 ms here, several
ms when the disk is busy), and 64 orders in flight are no faster than one. Here they run on one
thread per engine: the writes waiting when it starts a transaction (up to `MAX_GROUP`) run in
that one transaction, in order, and share one commit. One thread, so the writes of one process
never wait on each other's lock through SQLite's sleeping busy handler.

A `work` reads what it needs through its connection and has no effect outside it, so it can
run twice: when one write of a group raises, the group's transaction is rolled back and each
of its writes runs again alone, in order. (Not a savepoint per write: on SQLite one costs
~0.3 ms, a sub-journal file, more than the commit it shares.)

What a caller can rely on, as with a transaction of its own:
- `run` returns (or raises what `work` raised) only after the commit returned: what it wrote is
  durable and visible to every other connection and process.
- A `work` that raises is undone alone (it ends up in a transaction of its own that is
  rolled back); the others go on.
- If BEGIN or COMMIT fails, every write of the group gets that error and none of them happened.
- A caller canceled before its write started leaves nothing written; one canceled while its
  write runs gets the write's outcome, and the cancellation at its next await (as after a
  synchronous write), so no write ever happens without its caller knowing.
- Writes run in the order they were submitted. `lock` names the row a write locks first
  (PostgreSQL: SELECT ... FOR UPDATE); a group holds at most one such lock, so grouping never
  makes a lock order two processes could deadlock on.

The thread ends after `IDLE_S` without writes and starts again with the next one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

import sqlalchemy as sa

from tradeguard.store.engine import for_writing

__all__ = ["GroupWriter"]

T = TypeVar("T")


class _Job:
    __slots__ = ("cancelled", "future", "lock", "loop", "started", "work")

    def __init__(
        self,
        work: Callable[[sa.Connection], object],
        lock: int | None,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.work = work
        self.lock = lock
        self.loop = loop
        self.future = future
        self.started = False
        self.cancelled = False

    def deliver(self, ok: bool, value: object) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(cast(BaseException, value))

        # RuntimeError: the caller's loop is closed, nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(settle)


class _WorkFailed(Exception):
    """A `work` raised (its `__cause__`); not the database's BEGIN or COMMIT."""


class GroupWriter:
    MAX_GROUP = 256
    IDLE_S = 1.0

    _by_engine: ClassVar[weakref.WeakKeyDictionary[sa.Engine, GroupWriter]] = (
        weakref.WeakKeyDictionary()
    )
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def for_engine(cls, engine: sa.Engine) -> GroupWriter:
        """The writer of `engine`: every caller on one engine shares it (and its thread)."""
        with cls._registry_lock:
            writer = cls._by_engine.get(engine)
            if writer is None:
                writer = cls._by_engine[engine] = cls(engine)
            return writer

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._running = False
        self._conn: sa.Connection | None = None  # the thread's, kept between groups

    async def run(self, work: Callable[[sa.Connection], T], *, lock: int | None = None) -> T:
        """`work(conn)` in the next group transaction; its result once that transaction is
        committed. `work` does no I/O but on `conn`, may run twice (see above), and runs on
        the writer thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = _Job(work, lock, loop, future)
        with self._cond:
            self._jobs.append(job)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="group-writer", daemon=True).start()
            self._cond.notify()
        try:
            return cast(T, await asyncio.shield(future))
        except asyncio.CancelledError:
            with self._cond:
                if not job.started:  # still queued: it never runs, nothing is written
                    job.cancelled = True
                    raise
        # Already running: the write's outcome is the caller's, and the cancellation lands at
        # its next await (never a write that nobody knows about).
        while True:
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.done():
                    raise  # the write itself failed that way
                continue
            task = asyncio.current_task()
            if task is not None:
                task.cancel()
            return cast(T, result)

    def _take(self) -> list[_Job]:
        """The next group (called with the condition held)."""
        group: list[_Job] = []
        lock: int | None = None
        while self._jobs and len(group) < self.MAX_GROUP:
            job = self._jobs[0]
            if job.cancelled:
                self._jobs.popleft()
                continue
            if job.lock is not None:
                if lock is not None and job.lock != lock:
                    break  # another row lock: the next group
                lock = job.lock
            self._jobs.popleft()
            job.started = True
            group.append(job)
        return group

    def _connection(self) -> sa.Connection:
        """The thread's connection, kept open between groups (a pool checkout and its reset per
        group cost more than a journal row); dropped after an error and when the thread ends."""
        if self._conn is None:
            self._conn = for_writing(self._engine.connect())
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    self._cond.wait(self.IDLE_S)
                    if not self._jobs:
                        self._running = False
                        self._disconnect()
                        return
                group = self._take()
            if group:
                self._commit(group)

    def _commit(self, group: list[_Job]) -> None:
        if len(group) == 1:
            self._commit_one(group[0])
            return
        values: list[object] = []
        try:
            conn = self._connection()
            with conn.begin():
                for job in group:
                    try:
                        values.append(job.work(conn))
                    except Exception as error:
                        raise _WorkFailed from error
        except _WorkFailed:
            # One write raised: the whole transaction is rolled back, and each write runs
            # again alone, in order, so that only the one that raises fails (each `work` reads
            # what it needs in its transaction, so running it again is safe).
            for job in group:
                self._commit_one(job)
            return
        except Exception as error:  # noqa: BLE001 - BEGIN or COMMIT failed: nothing was written
            self._disconnect()
            for job in group:
                job.deliver(False, error)
            return
        for job, value in zip(group, values, strict=True):
            job.deliver(True, value)

    def _commit_one(self, job: _Job) -> None:
        """One write in its own transaction: a `work` that raises rolls all of it back."""
        try:
            conn = self._connection()
            with conn.begin():
                try:
                    value = job.work(conn)
                except Exception as error:
                    raise _WorkFailed from error
        except Exception as error:  # noqa: BLE001 - the caller gets it; nothing was written
            if not isinstance(error, _WorkFailed):
                self._disconnect()  # BEGIN or COMMIT failed: start again on a fresh connection
            job.deliver(False, error.__cause__ if isinstance(error, _WorkFailed) else error)
            return
        job.deliver(True, value)
