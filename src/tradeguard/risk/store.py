"""Where the risk engine keeps what must survive a restart: trading states (a halt stays a
halt), breaker trips, each bot's book and breaker meters, and closed trades.

`SqlRiskStore` writes each change in its own transaction before the engine's call returns.
Open orders are not stored here: after a restart they come from the venue (the gateway books
them again with `RiskEngine.restore_order`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, cast

import sqlalchemy as sa

from tradeguard.risk.book import BotBook, ClosedTrade, Position
from tradeguard.risk.breakers import BotMeters, Breaker, UserMeters
from tradeguard.risk.limits import Breakers, breakers_from, breakers_to_table
from tradeguard.risk.metrics import EquityPeak, TradeRecord
from tradeguard.risk.states import Scope, TradingState
from tradeguard.store.engine import for_writing
from tradeguard.store.group_writer import GroupWriter
from tradeguard.store.models import (
    RiskBot,
    RiskFill,
    RiskOrder,
    RiskState,
    RiskTrade,
    RiskTrip,
    RiskUser,
)
from tradeguard.venues.types import Trade

_STATES = cast(sa.Table, RiskState.__table__)
_TRIPS = cast(sa.Table, RiskTrip.__table__)
_BOTS = cast(sa.Table, RiskBot.__table__)
_TRADES = cast(sa.Table, RiskTrade.__table__)
_ORDERS = cast(sa.Table, RiskOrder.__table__)
_FILLS = cast(sa.Table, RiskFill.__table__)
_USERS = cast(sa.Table, RiskUser.__table__)

__all__ = [
    "BotRecord",
    "RiskStore",
    "SqlRiskStore",
    "StoredOrder",
    "StoredState",
    "StoredTrade",
    "TripRecord",
]


@dataclass(frozen=True, slots=True)
class BotRecord:
    name: str
    user: str
    account: str
    mode: str
    book: BotBook
    meters: BotMeters
    promoted_at: datetime | None = None
    capital: Decimal = Decimal(0)  # the equity the bot was registered with
    breakers: Breakers | None = None  # its breaker limits, for `risk status`


@dataclass(frozen=True, slots=True)
class TripRecord:
    scope: Scope
    breaker: Breaker
    value: Decimal
    limit: Decimal
    tripped_at: datetime
    reset_at: datetime | None = None
    reset_by: str | None = None
    reset_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StoredState:
    state: TradingState
    reason: str
    actor: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class StoredTrade:
    symbol: str
    pnl: Decimal
    opened_at: datetime | None
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class StoredOrder:
    client_order_id: str
    bot: str
    account: str
    symbol: str


class RiskStore(Protocol):
    def load_states(self) -> dict[Scope, TradingState]: ...

    def save_state(
        self, scope: Scope, state: TradingState, reason: str, actor: str, at: datetime
    ) -> None: ...

    def reset(self, scope: Scope, actor: str, reason: str, at: datetime) -> None: ...

    def add_trip(self, trip: TripRecord) -> None: ...

    def load_bot(self, name: str) -> BotRecord | None: ...

    def save_bot(self, record: BotRecord, at: datetime) -> None: ...

    def save_fill(
        self,
        record: BotRecord,
        closed: Iterable[ClosedTrade],
        at: datetime,
        trade: Trade | None = None,
    ) -> None: ...

    def load_user(self, name: str) -> UserMeters | None: ...

    def save_user(self, name: str, meters: UserMeters, at: datetime) -> None: ...


# -- the book as JSON (Decimals as strings: exact) ---------------------------------------------


def _dec(value: Decimal) -> str:
    return str(value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def dump_book(book: BotBook, meters: BotMeters, breakers: Breakers | None = None) -> str:
    record, peak = meters.record, meters.peak
    data = {
        "positions": {
            symbol: {
                "qty": _dec(p.qty),
                "avg_price": _dec(p.avg_price),
                "trade_pnl": _dec(p.trade_pnl),
                "opened_at": _time(p.opened_at),
            }
            for symbol, p in book.positions.items()
            if p.qty or p.trade_pnl
        },
        "realized": _dec(book.realized),
        "record": {
            "trades": record.trades,
            "wins": record.wins,
            "losses": record.losses,
            "gross_profit": _dec(record.gross_profit),
            "gross_loss": _dec(record.gross_loss),
            "consecutive_losses": record.consecutive_losses,
            "max_consecutive_losses": record.max_consecutive_losses,
        },
        **_dump_peak(peak),
        "day": None if meters.day is None else meters.day.isoformat(),
        "day_start": _dec(meters.day_start),
        "equity": _dec(meters.equity),
        "warned": sorted(b.value for b in meters.warned),
        "breakers": None if breakers is None else breakers_to_table(breakers),
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _dump_peak(peak: EquityPeak) -> dict[str, str | None]:
    return {
        "peak": None if peak.peak is None else _dec(peak.peak),
        "drawdown": _dec(peak.drawdown),
        "max_drawdown": _dec(peak.max_drawdown),
    }


def _load_peak(data: dict[str, Any]) -> EquityPeak:
    peak = EquityPeak()
    peak.peak = None if data["peak"] is None else Decimal(data["peak"])
    peak.drawdown = Decimal(data["drawdown"])
    peak.max_drawdown = Decimal(data["max_drawdown"])
    return peak


def dump_user(meters: UserMeters) -> str:
    data = {
        **_dump_peak(meters.peak),
        "equity": _dec(meters.equity),
        "warned": sorted(b.value for b in meters.warned),
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def load_user(text: str) -> UserMeters:
    data: dict[str, Any] = json.loads(text)
    return UserMeters(
        peak=_load_peak(data),
        equity=Decimal(data["equity"]),
        warned={Breaker(b) for b in data["warned"]},
    )


def load_book(text: str) -> tuple[BotBook, BotMeters]:
    data: dict[str, Any] = json.loads(text)
    book = BotBook(realized=Decimal(data["realized"]))
    for symbol, p in data["positions"].items():
        book.positions[symbol] = Position(
            qty=Decimal(p["qty"]),
            avg_price=Decimal(p["avg_price"]),
            trade_pnl=Decimal(p["trade_pnl"]),
            opened_at=_parse_time(p["opened_at"]),
        )
    record = TradeRecord()
    for name, value in data["record"].items():
        setattr(record, name, Decimal(value) if name.startswith("gross") else int(value))
    meters = BotMeters(
        record=record,
        peak=_load_peak(data),
        day=None if data["day"] is None else date.fromisoformat(data["day"]),
        day_start=Decimal(data["day_start"]),
        equity=Decimal(data["equity"]),
        warned={Breaker(b) for b in data["warned"]},
    )
    return book, meters


def _fill_row(record: BotRecord, trade: Trade) -> dict[str, Any]:
    return {
        "account": record.account,
        "trade_id": trade.trade_id,
        "client_order_id": trade.client_order_id or "",
        "bot": record.name,
        "symbol": trade.symbol,
        "side": trade.side.value,
        "amount": trade.amount,
        "price": trade.price,
        "fee": trade.fee,
        "fee_currency": trade.fee_currency,
        "filled_at": trade.at,
    }


class SqlRiskStore:
    """The risk tables of migration 0006, on SQLite or PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # `load_states` runs twice per order (the halt fence): a plain driver read from the
        # pool, its own statement (SQLite autocommit; PostgreSQL rolled back after), so it sees
        # every change committed before it runs, from any process. ~10 us instead of ~80 us.
        self._states_sql = str(
            sa.select(_STATES.c.scope, _STATES.c.state).compile(dialect=engine.dialect)
        )
        self._last_rows: list[tuple[str, str]] | None = None
        self._last_states: dict[Scope, TradingState] = {}
        self._parse_lock = threading.Lock()

    def _write(self) -> Any:
        return for_writing(self.engine.connect())

    def load_states(self) -> dict[Scope, TradingState]:
        """Every stored state, as committed when this runs (a halt from another process
        included). A read that fails raises: the caller refuses rather than guess."""
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(self._states_sql)
                rows = sorted((str(r[0]), str(r[1])) for r in cursor.fetchall())
            finally:
                cursor.close()
            conn.rollback()
        finally:
            conn.close()  # back to the pool
        with self._parse_lock:
            if rows != self._last_rows:
                self._last_states = {Scope.parse(s): TradingState(v) for s, v in rows}
                self._last_rows = rows
            return dict(self._last_states)

    def states(self) -> dict[Scope, StoredState]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_STATES)).all()
        return {
            Scope.parse(r.scope): StoredState(
                TradingState(r.state), r.reason, r.actor, r.changed_at
            )
            for r in rows
        }

    def save_state(
        self, scope: Scope, state: TradingState, reason: str, actor: str, at: datetime
    ) -> None:
        table = _STATES
        with self._write() as conn, conn.begin():
            conn.execute(sa.delete(table).where(table.c.scope == str(scope)))
            conn.execute(
                sa.insert(table).values(
                    scope=str(scope),
                    state=state.value,
                    reason=reason[:200],
                    actor=actor[:256],
                    changed_at=at,
                )
            )

    def reset(self, scope: Scope, actor: str, reason: str, at: datetime) -> None:
        states, trips = _STATES, _TRIPS
        with self._write() as conn, conn.begin():
            conn.execute(sa.delete(states).where(states.c.scope == str(scope)))
            conn.execute(
                sa.update(trips)
                .where(trips.c.scope == str(scope), trips.c.reset_at.is_(None))
                .values(reset_at=at, reset_by=actor[:256], reset_reason=reason[:200])
            )

    def add_trip(self, trip: TripRecord) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(
                sa.insert(_TRIPS).values(
                    scope=str(trip.scope),
                    breaker=trip.breaker.value,
                    value=trip.value,
                    limit=trip.limit,
                    tripped_at=trip.tripped_at,
                )
            )

    def trips(
        self, scope: Scope | Collection[Scope] | None = None, limit: int = 20
    ) -> list[TripRecord]:
        """The last `limit` trips, newest first: of `scope`, of any scope in a collection of
        them (an empty one has none), or (None) of every scope. The database picks them: a
        caller never reads other scopes' trips to throw them away."""
        table = _TRIPS
        query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
        if isinstance(scope, Scope):
            query = query.where(table.c.scope == str(scope))
        elif scope is not None:
            keys = sorted({str(s) for s in scope})
            if not keys:
                return []
            query = query.where(table.c.scope.in_(keys))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            TripRecord(
                Scope.parse(r.scope),
                Breaker(r.breaker),
                r.value,
                r.limit,
                r.tripped_at,
                r.reset_at,
                r.reset_by,
                r.reset_reason,
            )
            for r in rows
        ]

    def load_bot(self, name: str) -> BotRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_BOTS).where(_BOTS.c.name == name)).first()
        return None if row is None else _bot_record(row)

    def bots(self) -> list[BotRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_BOTS).order_by(_BOTS.c.name)).all()
        return [_bot_record(r) for r in rows]

    def save_bot(self, record: BotRecord, at: datetime) -> None:
        with self._write() as conn, conn.begin():
            self._upsert_bot(conn, record, at)

    def _upsert_bot(self, conn: sa.Connection, record: BotRecord, at: datetime) -> None:
        table = _BOTS
        values = {
            "user_name": record.user,
            "account": record.account,
            "mode": record.mode,
            "capital": record.capital,
            "book": dump_book(record.book, record.meters, record.breakers),
            "updated_at": at,
        }
        done = conn.execute(sa.update(table).where(table.c.name == record.name).values(values))
        if done.rowcount == 0:
            conn.execute(sa.insert(table).values(name=record.name, promoted_at=None, **values))

    def save_fill(
        self,
        record: BotRecord,
        closed: Iterable[ClosedTrade],
        at: datetime,
        trade: Trade | None = None,
    ) -> None:
        """The book after a fill, the trades it closed and the fill itself (the ledger), in one
        transaction: a crash keeps all of it or none."""
        with self._write() as conn, conn.begin():
            self._upsert_bot(conn, record, at)
            if trade is not None:
                conn.execute(sa.insert(_FILLS).values(_fill_row(record, trade)))
            trades = [
                {
                    "bot": record.name,
                    "mode": record.mode,
                    "symbol": t.symbol,
                    "pnl": t.pnl,
                    "opened_at": t.opened_at,
                    "closed_at": t.closed_at,
                }
                for t in closed
            ]
            if trades:
                conn.execute(sa.insert(_TRADES), trades)

    def booked_fills(self, account: str, trade_ids: Iterable[str]) -> set[str]:
        """Which of these fills on `account` are already in the ledger."""
        ids = list(trade_ids)
        query = sa.select(_FILLS.c.trade_id).where(
            _FILLS.c.account == account, _FILLS.c.trade_id.in_(ids)
        )
        with self.engine.connect() as conn:
            return set(conn.scalars(query)) if ids else set()

    def load_user(self, name: str) -> UserMeters | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_USERS.c.meters).where(_USERS.c.name == name)).first()
        return None if row is None else load_user(row.meters)

    def save_user(self, name: str, meters: UserMeters, at: datetime) -> None:
        values = {"meters": dump_user(meters), "updated_at": at}
        with self._write() as conn, conn.begin():
            done = conn.execute(sa.update(_USERS).where(_USERS.c.name == name).values(values))
            if done.rowcount == 0:
                conn.execute(sa.insert(_USERS).values(name=name, **values))

    def closed_trades(self, bot: str, mode: str) -> list[StoredTrade]:
        table = _TRADES
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table)
                .where(table.c.bot == bot, table.c.mode == mode)
                .order_by(table.c.id)
            ).all()
        return [StoredTrade(r.symbol, r.pnl, r.opened_at, r.closed_at) for r in rows]

    def promote(self, bot: str, at: datetime) -> None:
        table = _BOTS
        with self._write() as conn, conn.begin():
            conn.execute(
                sa.update(table).where(table.c.name == bot).values(mode="live", promoted_at=at)
            )

    # -- orders in flight or open (what an emergency stop from another process cancels) --------

    def record_order(self, order: StoredOrder, at: datetime) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(_INSERT, _order_row(order, at))

    def forget_order(self, client_order_id: str) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(_FORGET, {"cid": client_order_id})

    # The order path's versions: the same writes, committed on the engine's group writer
    # (off the event loop, one commit for the writes waiting together); each returns once its
    # write is committed, so "stored before sending" holds as with the methods above.

    async def record_order_async(self, order: StoredOrder, at: datetime) -> None:
        row = _order_row(order, at)
        await GroupWriter.for_engine(self.engine).run(lambda conn: conn.execute(_INSERT, row))

    async def forget_order_async(self, client_order_id: str) -> None:
        row = {"cid": client_order_id}
        await GroupWriter.for_engine(self.engine).run(lambda conn: conn.execute(_FORGET, row))

    def orders(self, bots: Iterable[str] | None = None) -> list[StoredOrder]:
        query = sa.select(_ORDERS).order_by(_ORDERS.c.created_at)
        if bots is not None:
            query = query.where(_ORDERS.c.bot.in_(list(bots)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [StoredOrder(r.client_order_id, r.bot, r.account, r.symbol) for r in rows]


# Built once (their compiled form is cached): the order path runs them per order.
_INSERT = sa.insert(_ORDERS)
_FORGET = sa.delete(_ORDERS).where(_ORDERS.c.client_order_id == sa.bindparam("cid"))


def _order_row(order: StoredOrder, at: datetime) -> dict[str, object]:
    return {
        "client_order_id": order.client_order_id,
        "bot": order.bot,
        "account": order.account,
        "symbol": order.symbol,
        "created_at": at,
    }


def _bot_record(row: sa.Row[Any]) -> BotRecord:
    book, meters = load_book(row.book)
    table = json.loads(row.book).get("breakers")
    breakers = None if table is None else breakers_from(table, where="stored bot breakers")
    return BotRecord(
        row.name,
        row.user_name,
        row.account,
        row.mode,
        book,
        meters,
        row.promoted_at,
        row.capital,
        breakers,
    )
