"""The audit log's writer: durable appends, group commit, signed tree heads.

`AuditLog.append()` checks and canonicalises the entry in the caller's thread (a bad entry is
refused before anything is queued), hands it to one writer thread, and returns the entry's seq
only once the transaction that holds it has committed. The writer takes every entry that is
waiting (and, while other callers are still inside `append()`, waits up to the group-commit
window, 2 ms by default, for them) and writes them in one transaction: one fsync for the lot.

Several processes (CLI commands, server instances on PostgreSQL) append to one log: each
transaction locks the single `audit_state` row first (SQLite: BEGIN IMMEDIATE; PostgreSQL:
SELECT ... FOR UPDATE), reads the tree's size and compact range from it, and writes them back
advanced. One sequence, dense from 0, one tree, no forks.

A tree head is signed in the same transaction when `head_every` entries have been added since the
last one, when an entry has waited `head_interval` seconds without one (whether more entries
keep arriving or none do: the writer wakes for that deadline), and on `close()`. After the
commit it is appended to the checkpoint file and, when configured, POSTed to the webhook.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from tradeguard.audit import tables
from tradeguard.audit.entry import (
    actor_hash,
    canonical_details,
    check_actor,
    check_event,
    check_ip,
    check_subject,
    leaf_data,
    to_micros,
)
from tradeguard.audit.heads import TreeHead, WebhookPublisher, append_checkpoint, origin_of
from tradeguard.audit.keys import AuditKeys
from tradeguard.audit.merkle import Frontier, leaf_hash
from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import StorageError
from tradeguard.core.events import DomainEvent, EventName
from tradeguard.secrets.patterns import redact_text
from tradeguard.store.engine import for_writing

__all__ = ["STORED_NODE_LEVEL", "AuditLog", "AuditOptions", "AuditWriteError"]

log = logging.getLogger(__name__)

# Subtrees of 2**8 leaves and larger are stored, so a proof reads O(log n) node rows and at most
# a few ranges of fewer than 256 leaves.
STORED_NODE_LEVEL = 8
_MAX_BATCH = 1024


@dataclass(frozen=True)
class _Statements:
    """The writer's statements in the driver's own parameter style: they run for every batch,
    and SQLAlchemy's per-statement and per-row processing cost more than the work."""

    lock_state: str
    update_state: str
    insert_entries: str
    insert_nodes: str

    @classmethod
    def for_dialect(cls, name: str) -> _Statements:
        # Only constants are interpolated (placeholders, column names); values are parameters.
        m = "%s" if name == "postgresql" else "?"
        lock = " FOR UPDATE" if name == "postgresql" else ""  # SQLite: BEGIN IMMEDIATE
        columns = "seq, ts, event, actor, subject, ip, details, leaf_hash, key_version, mac"
        state = "size, frontier, last_head_size, last_head_ts"
        return cls(
            f"SELECT {state} FROM audit_state WHERE id = 1{lock}",  # noqa: S608
            f"UPDATE audit_state SET size = {m}, frontier = {m}, root = {m}, "  # noqa: S608
            f"last_head_size = {m}, last_head_ts = {m} WHERE id = 1",
            f"INSERT INTO audit_log ({columns}) VALUES ({', '.join([m] * 10)})",  # noqa: S608
            f"INSERT INTO audit_nodes (level, idx, hash) VALUES ({m}, {m}, {m})",  # noqa: S608
        )


class AuditWriteError(StorageError):
    """The audit log could not be written; the entry (and whatever needed it) did not happen."""

    exit_code = 1


@dataclass(frozen=True)
class AuditOptions:
    head_every: int = 1000
    head_interval: float = 60.0
    window: float = 0.002  # group-commit window, seconds
    checkpoint_file: Path | None = None


class _Waiter:
    """A calling thread's wait for its commit: a lock the writer releases once the seq (or the
    error) is set. A `concurrent.futures.Future` does the same with a condition variable and
    its bookkeeping, which 64 threads pay on every append."""

    __slots__ = ("_done", "error", "seq")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self.seq = -1
        self.error: AuditWriteError | None = None

    def settle(self, seq: int, error: AuditWriteError | None) -> None:
        self.seq, self.error = seq, error
        self._done.release()

    def wait(self) -> int:
        self._done.acquire()
        if self.error is not None:
            raise self.error
        return self.seq


@dataclass(slots=True)
class _Pending:
    ts: int
    event: str
    actor: str | None
    subject: str | None
    ip: str | None
    details: str
    # A calling thread's waiter, or (with `loop`) an asyncio future of that loop.
    future: _Waiter | asyncio.Future[int]
    loop: asyncio.AbstractEventLoop | None = None


def _settle(batch: list[_Pending], first: int, error: AuditWriteError | None) -> None:
    """Hand each caller its seq (or the error): threads directly, and each event loop its
    callers in one call, not one wake-up per entry."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
    for offset, pending in enumerate(batch):
        if pending.loop is not None:
            future = cast(asyncio.Future[int], pending.future)  # append_async made it
            by_loop.setdefault(pending.loop, []).append((future, first + offset))
        else:
            cast(_Waiter, pending.future).settle(first + offset, error)
    for loop, waiting in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_in_loop, waiting, error)
        except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
            log.debug("audit: an event loop closed before its appends were acknowledged")


def _settle_in_loop(
    waiting: list[tuple[asyncio.Future[int], int]], error: AuditWriteError | None
) -> None:
    for future, seq in waiting:
        if future.done():  # the caller was cancelled; its entry is written all the same
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(seq)


@dataclass(frozen=True)
class _Written:
    size: int
    head: TreeHead | None


class AuditLog:
    """Append-only, tamper-evident audit log. Also an `EventSink` for domain events."""

    def __init__(
        self,
        engine: sa.Engine,
        keys: AuditKeys,
        *,
        clock: Clock | None = None,
        options: AuditOptions | None = None,
        webhook: WebhookPublisher | None = None,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.clock = clock or SystemClock()
        self.options = options or AuditOptions()
        self.webhook = webhook
        with engine.connect() as conn:
            self.origin = origin_of(tables.instance_id(conn))
        self._pepper = keys.pepper(_pepper_version(engine, keys.primary))
        self._queue: deque[_Pending] = deque()
        self._inside = 0  # callers inside append(): the writer waits for them, briefly
        self._cond = threading.Condition()
        self._closing = False
        self._closed = False
        self._head_now: list[Future[TreeHead | None]] = []
        self._conn: sa.Connection | None = None
        # When the writer first saw entries that no signed head covers (clock.monotonic()).
        self._unsigned_since: float | None = None
        self._sql = _Statements.for_dialect(engine.dialect.name)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    # -- appending -----------------------------------------------------------------------------

    def actor(self, actor_id: str) -> str:
        """The hash an actor id is stored as: search the log for it."""
        return actor_hash(self._pepper, actor_id)

    def append(
        self,
        event: EventName | str,
        *,
        actor: str | None = None,
        subject: str | None = None,
        ip: str | None = None,
        details: Mapping[str, object] | None = None,
        at: datetime | None = None,
    ) -> int:
        """Append one entry; its seq, once committed. Refuses bad input before writing."""
        self._enter()
        try:
            waiter = _Waiter()
            self._enqueue(self._prepare(event, actor, subject, ip, details, at, waiter, None))
            return waiter.wait()
        finally:
            self._leave()

    def _prepare(
        self,
        event: EventName | str,
        actor: str | None,
        subject: str | None,
        ip: str | None,
        details: Mapping[str, object] | None,
        at: datetime | None,
        future: _Waiter | asyncio.Future[int],
        loop: asyncio.AbstractEventLoop | None,
    ) -> _Pending:
        return _Pending(
            to_micros(at or self.clock.now()),
            check_event(event).value,
            None if actor is None else actor_hash(self._pepper, check_actor(actor)),
            check_subject(subject),
            check_ip(ip),
            canonical_details(details),
            future,
            loop,
        )

    def _enter(self) -> None:
        """Count a caller in: while it prepares its entry, the writer may wait for it."""
        with self._cond:
            if self._closing:
                raise AuditWriteError("the audit log is closed; nothing was written")
            self._inside += 1

    def _enqueue(self, pending: _Pending) -> None:
        with self._cond:
            self._queue.append(pending)
            if len(self._queue) == 1 or self._batch_full():
                self._cond.notify()

    def _leave(self) -> None:
        with self._cond:
            self._inside -= 1
            if self._queue and self._batch_full():
                self._cond.notify()

    def _batch_full(self) -> bool:
        """Every caller inside append has queued its entry (or the batch is at its limit): what
        the writer waits for inside the window. Wake it only then, and for the first entry."""
        return len(self._queue) >= min(self._inside, _MAX_BATCH)

    async def append_async(
        self,
        event: EventName | str,
        *,
        actor: str | None = None,
        subject: str | None = None,
        ip: str | None = None,
        details: Mapping[str, object] | None = None,
        at: datetime | None = None,
    ) -> int:
        """`append` for asyncio code (the gateway): awaits the commit without blocking the loop."""
        self._enter()
        try:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[int] = loop.create_future()
            self._enqueue(self._prepare(event, actor, subject, ip, details, at, future, loop))
            return await future
        finally:
            self._leave()

    def emit(self, event: DomainEvent) -> None:
        self.append(
            event.name,
            actor=event.actor,
            subject=event.subject,
            ip=event.ip,
            details=event.details,
            at=event.at,
        )

    def sign_head(self) -> TreeHead | None:
        """Sign a tree head now if entries were added since the last one; the head, if any."""
        future: Future[TreeHead | None] = Future()
        with self._cond:
            if self._closing:
                raise AuditWriteError("the audit log is closed")
            self._head_now.append(future)
            self._cond.notify_all()
        return future.result()

    def close(self) -> None:
        """Write what is queued, sign a final tree head, stop the writer and the webhook."""
        with self._cond:
            if self._closed:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._closed = True
        if self.webhook is not None:
            self.webhook.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the writer thread ---------------------------------------------------------------------

    def _head_deadline_passed(self) -> bool:
        """An entry has waited `head_interval` for a signed head (writer thread only)."""
        since = self._unsigned_since
        return since is not None and self.clock.monotonic() - since >= self.options.head_interval

    def _take(self) -> tuple[list[_Pending], list[Future[TreeHead | None]]]:
        """The next batch and the explicit head requests; returns empty-handed when the head
        deadline comes first."""
        since = self._unsigned_since
        wait = self.options.head_interval
        if since is not None:
            wait = max(0.0, since + wait - self.clock.monotonic())
        with self._cond:
            self._cond.wait_for(
                lambda: self._queue or self._head_now or self._closing, timeout=wait
            )
            if self._queue and self.options.window > 0:
                # Real time, not the injected clock: this is about batching commits.
                deadline = time.monotonic() + self.options.window
                while not self._batch_full():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._cond.wait(remaining):
                        break
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), _MAX_BATCH))]
            heads, self._head_now = self._head_now, []
            return batch, heads

    def _run(self) -> None:
        try:
            while True:
                batch, head_requests = self._take()
                with self._cond:
                    stopping = self._closing and not self._queue
                force = bool(head_requests) or stopping
                if batch or force or self._head_deadline_passed():
                    self._write_safely(batch, force=force, head_requests=head_requests)
                if stopping:
                    return
        finally:
            self._disconnect()

    def _connection(self) -> sa.Connection:
        """The writer's own connection, kept open between batches (a checkout per batch costs
        more than the batch's inserts)."""
        if self._conn is None:
            self._conn = for_writing(self.engine.connect())
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:
                log.debug("audit writer: closing a broken connection failed", exc_info=True)

    def _write_safely(
        self,
        batch: list[_Pending],
        *,
        force: bool,
        head_requests: list[Future[TreeHead | None]],
    ) -> None:
        try:
            written = self._write(batch, force=force)
        except Exception as e:  # noqa: BLE001 - handed to every waiting caller, never lost
            self._disconnect()  # the next batch starts on a fresh connection
            error = _write_error(e)
            _settle(batch, 0, error)
            for head_request in head_requests:
                head_request.set_exception(error)
            log.error("audit log write failed: %s", error.message)
            return
        _settle(batch, written.size - len(batch), None)
        if written.head is not None:
            self._publish(written.head)
        for head_request in head_requests:
            head_request.set_result(written.head)

    def _publish(self, head: TreeHead) -> None:
        if self.options.checkpoint_file is not None:
            try:
                append_checkpoint(self.options.checkpoint_file, head, self.keys)
            except OSError as e:
                log.error(
                    "audit: tree head %d is stored but not in the checkpoint file %s (%s)",
                    head.size,
                    self.options.checkpoint_file,
                    e.strerror,
                )
        if self.webhook is not None:
            self.webhook.publish(head)

    def _write(self, batch: list[_Pending], *, force: bool) -> _Written:
        conn = self._connection()
        # The driver's cursor inside SQLAlchemy's transaction: these run for every batch.
        with conn.begin(), closing(conn.connection.cursor()) as cursor:
            sql = self._sql
            cursor.execute(sql.lock_state)
            state = cursor.fetchone()
            if state is None:
                raise AuditWriteError("the audit_state row is missing; run `tradeguard db upgrade`")
            size, blob, last_head_size, last_head_ts = state
            frontier = Frontier.from_bytes(size, bytes(blob))
            if batch:
                self._insert(cursor, frontier, batch)
            root = frontier.root()
            now = to_micros(self.clock.now())
            due = (
                frontier.size - last_head_size >= self.options.head_every
                or self._head_deadline_passed()
            )
            head = None
            if frontier.size > last_head_size and (force or due):
                head = TreeHead.sign(self.keys, self.origin, frontier.size, root, now)
                conn.execute(
                    sa.insert(tables.tree_heads).values(
                        size=head.size,
                        ts=head.ts,
                        root=head.root,
                        key_version=head.key_version,
                        signature=head.signature,
                    )
                )
            if batch or head is not None:
                if head is not None:
                    last_head_size, last_head_ts = head.size, head.ts
                cursor.execute(
                    sql.update_state,
                    (frontier.size, frontier.to_bytes(), root, last_head_size, last_head_ts),
                )
        # Another process's head may have covered our entries: the deadline follows the log.
        if head is not None or frontier.size == last_head_size:
            self._unsigned_since = None
        elif self._unsigned_since is None:
            self._unsigned_since = self.clock.monotonic()
        return _Written(frontier.size, head)

    def _insert(self, cursor: Any, frontier: Frontier, batch: list[_Pending]) -> None:
        version = self.keys.primary
        first = frontier.size
        append = frontier.append
        leaves = []
        stored = []
        for seq, p in enumerate(batch, first):
            leaf = leaf_hash(leaf_data(seq, p.ts, p.event, p.actor, p.subject, p.ip, p.details))
            leaves.append(leaf)
            for level, index, node in append(leaf):
                if level >= STORED_NODE_LEVEL:
                    stored.append((level, index, node))
        macs = self.keys.mac_key(version).macs(first, leaves)
        cursor.executemany(
            self._sql.insert_entries,
            [
                (seq, p.ts, p.event, p.actor, p.subject, p.ip, p.details, leaf, version, mac)
                for seq, p, leaf, mac in zip(
                    range(first, first + len(batch)), batch, leaves, macs, strict=True
                )
            ],
        )
        if stored:
            cursor.executemany(self._sql.insert_nodes, stored)


def _pepper_version(engine: sa.Engine, primary: int) -> int:
    """The audit-key version whose pepper hashes actors: fixed by the first writer, for good."""
    select = sa.select(tables.state.c.pepper_version)
    with engine.connect() as conn:
        version = conn.execute(select).scalar_one()
    if version is not None:
        return int(version)
    with for_writing(engine.connect()) as conn, conn.begin():
        conn.execute(
            sa.update(tables.state)
            .where(tables.state.c.id == 1, tables.state.c.pepper_version.is_(None))
            .values(pepper_version=primary)
        )
        return int(conn.execute(select).scalar_one())


def _write_error(error: Exception) -> AuditWriteError:
    if isinstance(error, AuditWriteError):
        return error
    if isinstance(error, DBAPIError) and error.orig is not None:
        reason = redact_text(str(error.orig).strip().splitlines()[0])
    else:
        reason = redact_text(str(error).strip().splitlines()[0]) if str(error) else ""
    return AuditWriteError(
        f"the audit log could not be written ({type(error).__name__}: {reason}); the entry "
        "was not recorded; check the database"
    )
