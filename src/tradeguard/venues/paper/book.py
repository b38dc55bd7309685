"""Where a paper account's state lives: `PaperBook`, with a SQL and an in-memory implementation.

`PaperVenue` holds the rules (checks, holds, fills, ids); a book holds the state it reads and
writes: orders, fills, balances, the two id counters and the last candle per symbol. Every
change runs in one `writing()` transaction, every read in a `reading()` view:

    with book.writing() as txn:
        mark = txn.candle_mark("ETH/BTC")
        ...
        txn.save_mark("ETH/BTC", candle)

`SqlBook` keeps them in the database (`store`: one database transaction per `writing()`, the
account row locked first, persistent across restarts). `MemoryBook` keeps them in dicts, for
backtests: nothing survives the process, and it serves one thread (asyncio is fine: the venue
never awaits inside a transaction). Both give the same answers to the same calls; a transaction
that raises changes nothing in either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Protocol, TypeVar

import sqlalchemy as sa

from tradeguard.marketdata.candles import Candle
from tradeguard.store.engine import for_writing
from tradeguard.store.group_writer import GroupWriter
from tradeguard.venues.paper import store
from tradeguard.venues.paper.engine import Ledger, PaperOrderState
from tradeguard.venues.types import BalanceLine, OrderStatus, Trade

__all__ = ["BookTxn", "BookView", "Counters", "MemoryBook", "PaperBook", "SqlBook"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Counters:
    """The last order and trade numbers handed out (venue ids `PO…` and `PT…` derive from them)."""

    order_seq: int
    trade_seq: int


class BookView(Protocol):
    """Reads of one paper account's state."""

    def find_order(
        self, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> PaperOrderState | None:
        """The order with these ids (each one given must match), or None."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[PaperOrderState]:
        """Open orders (of `symbol`, or all) in the order they were accepted."""
        ...

    def ledger_lines(self) -> dict[str, BalanceLine]:
        """Free and used per currency, by currency name (zero lines included)."""
        ...

    def candle_mark(self, symbol: str) -> Candle | None:
        """The last candle processed for `symbol`."""
        ...

    def select_trades(self, symbol: str, since_ms: int | None, limit: int | None) -> list[Trade]:
        """Oldest first: from `since_ms` on, the first `limit`; without `since_ms`, the last."""
        ...


class BookTxn(BookView, Protocol):
    """Reads and writes of one paper account's state, inside one transaction."""

    def counters(self) -> Counters: ...

    def save_counters(self, counters: Counters) -> None: ...

    def insert_order(self, order: PaperOrderState) -> None: ...

    def update_order(self, order: PaperOrderState) -> None:
        """Replace the stored order with the same `seq`."""
        ...

    def save_ledger(self, ledger: Ledger) -> None:
        """Store the lines `ledger` changed."""
        ...

    def save_mark(self, symbol: str, candle: Candle) -> None: ...

    def insert_trade(self, seq: int, trade: Trade) -> None: ...


class PaperBook(Protocol):
    """One paper account's state. `writing()` is a transaction: all of it or, if the block
    raises, none of it."""

    @property
    def account(self) -> str: ...

    def writing(self) -> AbstractContextManager[BookTxn]: ...

    def reading(self) -> AbstractContextManager[BookView]: ...

    async def write(self, work: Callable[[BookTxn], T]) -> T:
        """`work(txn)` in one `writing()` transaction; its result once the transaction is
        committed, or its error with nothing of it written. `work` does no I/O of its own,
        has no effect outside `txn` (it may run twice) and may run on another thread."""
        ...


# -- SQL ---------------------------------------------------------------------------------------


class _SqlView:
    def __init__(self, conn: sa.Connection, account_id: int) -> None:
        self.conn = conn
        self.account_id = account_id

    def find_order(
        self, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> PaperOrderState | None:
        return store.find_order(
            self.conn,
            self.account_id,
            venue_order_id=venue_order_id,
            client_order_id=client_order_id,
        )

    def open_orders(self, symbol: str | None = None) -> list[PaperOrderState]:
        return store.open_orders(self.conn, self.account_id, symbol)

    def ledger_lines(self) -> dict[str, BalanceLine]:
        return store.ledger_lines(self.conn, self.account_id)

    def candle_mark(self, symbol: str) -> Candle | None:
        return store.candle_mark(self.conn, self.account_id, symbol)

    def select_trades(self, symbol: str, since_ms: int | None, limit: int | None) -> list[Trade]:
        return store.select_trades(self.conn, self.account_id, symbol, since_ms, limit)


class _SqlTxn(_SqlView):
    def __init__(self, conn: sa.Connection, account: store.AccountRow) -> None:
        super().__init__(conn, account.id)
        self.account = account

    def counters(self) -> Counters:
        return Counters(self.account.order_seq, self.account.trade_seq)

    def save_counters(self, counters: Counters) -> None:
        self.account = replace(
            self.account, order_seq=counters.order_seq, trade_seq=counters.trade_seq
        )
        store.save_counters(self.conn, self.account)

    def insert_order(self, order: PaperOrderState) -> None:
        store.insert_order(self.conn, self.account_id, order)

    def update_order(self, order: PaperOrderState) -> None:
        store.update_order(self.conn, self.account_id, order)

    def save_ledger(self, ledger: Ledger) -> None:
        store.save_ledger(self.conn, self.account_id, ledger)

    def save_mark(self, symbol: str, candle: Candle) -> None:
        store.save_mark(self.conn, self.account_id, symbol, candle)

    def insert_trade(self, seq: int, trade: Trade) -> None:
        store.insert_trade(self.conn, self.account_id, seq, trade)


class SqlBook:
    """The account named `account` in the store's paper_* tables, created with `starting`
    balances the first time (an existing account is never reset). Each `writing()` is one
    database transaction that locks the account row first, so two processes cannot interleave
    on one account; the engine belongs to the caller."""

    def __init__(
        self, engine: sa.Engine, account: str, starting: Mapping[str, Decimal], now: datetime
    ) -> None:
        self.engine = engine
        self._row = store.ensure_account(engine, account, starting, now)

    @property
    def account(self) -> str:
        return self._row.name

    @contextmanager
    def writing(self) -> Iterator[BookTxn]:
        with for_writing(self.engine.connect()) as conn, conn.begin():
            yield _SqlTxn(conn, store.lock_account(conn, self._row.id))

    @contextmanager
    def reading(self) -> Iterator[BookView]:
        with self.engine.connect() as conn:
            yield _SqlView(conn, self._row.id)

    async def write(self, work: Callable[[BookTxn], T]) -> T:
        """`work` on the engine's writer thread (off the event loop), grouped with the writes
        waiting beside it into one database transaction and one commit (`GroupWriter`), with
        the account row locked first, as `writing()`."""
        account_id = self._row.id

        def run(conn: sa.Connection) -> T:
            return work(_SqlTxn(conn, store.lock_account(conn, account_id)))

        return await GroupWriter.for_engine(self.engine).run(run, lock=account_id)


# -- memory ------------------------------------------------------------------------------------


def _utc(at: datetime) -> datetime:
    """`at` as the database gives it back: aware, in UTC (a naive time is refused, as there)."""
    if at.tzinfo is UTC:
        return at
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC datetime (the clock gives one)")
    return at.astimezone(UTC)


def _stored_order(order: PaperOrderState) -> PaperOrderState:
    created, updated = _utc(order.created_at), _utc(order.updated_at)
    if created is order.created_at and updated is order.updated_at:
        return order
    return replace(order, created_at=created, updated_at=updated)


class MemoryBook:
    """A paper account held in memory, for backtests: nothing is persisted, and a new
    `MemoryBook` starts again from `starting`.

    Open orders are kept per symbol in the order they were accepted, so a candle for a symbol
    with no open orders costs a dict lookup. A `writing()` block that raises is undone (each
    write records how to revert itself), as a database rolls back. One thread at a time; the
    transactions do not nest.
    """

    def __init__(self, account: str, starting: Mapping[str, Decimal]) -> None:
        self._account = account
        self._counters = Counters(0, 0)
        self._lines: dict[str, BalanceLine] = {
            currency: BalanceLine(amount, Decimal(0))
            for currency, amount in sorted(starting.items())
            if amount
        }
        self._orders: dict[int, PaperOrderState] = {}
        self._by_venue_id: dict[str, int] = {}
        self._by_client_id: dict[str, int] = {}
        self._open: dict[str, dict[int, PaperOrderState]] = {}
        self._trades: dict[str, list[Trade]] = {}
        self._marks: dict[str, Candle] = {}
        self._undo: list[Callable[[], None]] | None = None

    @property
    def account(self) -> str:
        return self._account

    # -- transactions (the book is its own transaction object: no allocation per call) --------

    def writing(self) -> MemoryBook:
        return self

    async def write(self, work: Callable[[BookTxn], T]) -> T:
        """`work` here and now (a backtest's replay stays deterministic)."""
        with self:
            return work(self)

    def reading(self) -> MemoryBook:
        return self

    def __enter__(self) -> MemoryBook:
        if self._undo is not None:
            raise RuntimeError("paper memory book: transactions do not nest")
        self._undo = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        undo, self._undo = self._undo, None
        if exc_type is not None and undo:
            for step in reversed(undo):
                step()

    def _record(self, step: Callable[[], None]) -> None:
        if self._undo is None:
            raise RuntimeError("paper memory book: a write outside writing()")
        self._undo.append(step)

    # -- reads ---------------------------------------------------------------------------------

    def find_order(
        self, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> PaperOrderState | None:
        if venue_order_id is not None:
            seq = self._by_venue_id.get(venue_order_id)
        elif client_order_id is not None:
            seq = self._by_client_id.get(client_order_id)
        else:  # as the SQL query without a condition: the account's first order
            seq = min(self._orders, default=None)
        order = None if seq is None else self._orders[seq]
        if order is not None and client_order_id not in (None, order.client_order_id):
            return None
        return order

    def open_orders(self, symbol: str | None = None) -> list[PaperOrderState]:
        if symbol is not None:
            book = self._open.get(symbol)
            return list(book.values()) if book else []
        every = [o for book in self._open.values() for o in book.values()]
        return sorted(every, key=lambda o: o.seq)

    def ledger_lines(self) -> dict[str, BalanceLine]:
        return dict(self._lines)

    def candle_mark(self, symbol: str) -> Candle | None:
        return self._marks.get(symbol)

    def select_trades(self, symbol: str, since_ms: int | None, limit: int | None) -> list[Trade]:
        trades = self._trades.get(symbol, [])
        if since_ms is not None:
            since = datetime.fromtimestamp(since_ms / 1000, UTC)
            picked = [t for t in trades if t.at >= since]
            return picked if limit is None else picked[:limit]
        return list(trades if limit is None else trades[-limit:])

    # -- writes --------------------------------------------------------------------------------

    def counters(self) -> Counters:
        return self._counters

    def save_counters(self, counters: Counters) -> None:
        before = self._counters
        self._record(lambda: setattr(self, "_counters", before))
        self._counters = counters

    def insert_order(self, order: PaperOrderState) -> None:
        if (
            order.seq in self._orders
            or order.venue_order_id in self._by_venue_id
            or order.client_order_id in self._by_client_id
        ):
            raise ValueError(f"paper memory book: order {order.venue_order_id} exists already")
        stored = _stored_order(order)
        self._record(lambda: self._forget(stored))
        self._orders[stored.seq] = stored
        self._by_venue_id[stored.venue_order_id] = stored.seq
        self._by_client_id[stored.client_order_id] = stored.seq
        self._place(stored)

    def update_order(self, order: PaperOrderState) -> None:
        before = self._orders.get(order.seq)
        if before is None:
            raise LookupError(f"paper memory book: no order {order.venue_order_id} to update")
        self._record(lambda: self._put(before))
        self._put(_stored_order(order))

    def save_ledger(self, ledger: Ledger) -> None:
        if not ledger.changed:
            return
        before = dict(self._lines)
        self._record(lambda: setattr(self, "_lines", before))
        lines = dict(self._lines)
        for currency in ledger.changed:
            lines[currency] = ledger.line(currency)
        self._lines = dict(sorted(lines.items()))

    def save_mark(self, symbol: str, candle: Candle) -> None:
        before = self._marks.get(symbol)
        undo = self._undo
        if undo is None:
            raise RuntimeError("paper memory book: a write outside writing()")
        undo.append(lambda: self._restore_mark(symbol, before))
        self._marks[symbol] = candle

    def insert_trade(self, seq: int, trade: Trade) -> None:
        if trade.at.tzinfo is not UTC:
            trade = replace(trade, at=_utc(trade.at))
        trades = self._trades.setdefault(trade.symbol, [])

        def undo() -> None:
            trades.pop()

        self._record(undo)
        trades.append(trade)

    # -- helpers -------------------------------------------------------------------------------

    def _place(self, order: PaperOrderState) -> None:
        """Keep `order` in its symbol's open orders if it is open, in `seq` order."""
        book = self._open.setdefault(order.symbol, {})
        if order.status is not OrderStatus.OPEN:
            book.pop(order.seq, None)
        elif order.seq in book or not book or order.seq > next(reversed(book)):
            book[order.seq] = order  # in place, or after every open one: the order stays
        else:  # an order that opens again behind later ones (the venue never does this)
            book[order.seq] = order
            self._open[order.symbol] = dict(sorted(book.items()))

    def _put(self, order: PaperOrderState) -> None:
        self._orders[order.seq] = order
        self._place(order)

    def _forget(self, order: PaperOrderState) -> None:
        del self._orders[order.seq]
        del self._by_venue_id[order.venue_order_id]
        del self._by_client_id[order.client_order_id]
        self._open.get(order.symbol, {}).pop(order.seq, None)

    def _restore_mark(self, symbol: str, candle: Candle | None) -> None:
        if candle is None:
            self._marks.pop(symbol, None)
        else:
            self._marks[symbol] = candle
