"""The paper venue's rows: SQLAlchemy Core over the paper_* tables (store/models.py).

Every function takes the connection of the caller's transaction; the venue runs each state
change (an order, a cancel, a candle) in one transaction, with the account row locked first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa

from tradeguard.marketdata.candles import Candle
from tradeguard.store.models import PaperAccount, PaperBalance, PaperMark, PaperOrder, PaperTrade
from tradeguard.venues.paper.engine import Ledger, PaperOrderState
from tradeguard.venues.types import (
    BalanceLine,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Trade,
)

__all__ = [
    "AccountRow",
    "candle_mark",
    "ensure_account",
    "find_order",
    "insert_order",
    "insert_trade",
    "ledger_lines",
    "lock_account",
    "open_orders",
    "save_counters",
    "save_ledger",
    "save_mark",
    "select_trades",
    "update_order",
]

accounts = cast(sa.Table, PaperAccount.__table__)
balances = cast(sa.Table, PaperBalance.__table__)
orders = cast(sa.Table, PaperOrder.__table__)
trades = cast(sa.Table, PaperTrade.__table__)
marks = cast(sa.Table, PaperMark.__table__)


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    name: str
    order_seq: int
    trade_seq: int


def _account(row: sa.Row[Any]) -> AccountRow:
    m = row._mapping
    return AccountRow(m["id"], m["name"], int(m["order_seq"]), int(m["trade_seq"]))


def ensure_account(
    engine: sa.Engine, name: str, starting: Mapping[str, Decimal], now: datetime
) -> AccountRow:
    """The account named `name`, created with `starting` balances if it does not exist yet.
    An existing account is returned as it is: never reset."""
    query = sa.select(accounts).where(accounts.c.name == name)
    with engine.begin() as conn:
        row = conn.execute(query).first()
        if row is not None:
            return _account(row)
    try:
        with engine.begin() as conn:
            result = conn.execute(
                accounts.insert().values(
                    name=name,
                    created_at=now,
                    starting_balances=json.dumps({c: str(v) for c, v in starting.items()}),
                    order_seq=0,
                    trade_seq=0,
                )
            )
            key = result.inserted_primary_key
            if key is None:
                raise RuntimeError("the database did not return the new paper account's id")
            for currency, amount in sorted(starting.items()):
                if amount:
                    conn.execute(
                        balances.insert().values(
                            account_id=int(key[0]), currency=currency, free=amount, used=Decimal(0)
                        )
                    )
    except sa.exc.IntegrityError:
        pass  # another venue created it at the same moment; use theirs
    with engine.begin() as conn:
        return _account(conn.execute(query).one())


# The statements of the order path are built once, with bound parameters (named `b_*` where
# they are not column values), so SQLAlchemy compiles each once and reuses it: building a
# statement per call cost more CPU than the database's work.
_LOCK_ACCOUNT = sa.select(accounts).where(accounts.c.id == sa.bindparam("b_id")).with_for_update()
_SAVE_COUNTERS = accounts.update().where(accounts.c.id == sa.bindparam("b_id"))
_LEDGER = (
    sa.select(balances)
    .where(balances.c.account_id == sa.bindparam("b_account"))
    .order_by(balances.c.currency)
)
_UPDATE_BALANCE = balances.update().where(
    balances.c.account_id == sa.bindparam("b_account"),
    balances.c.currency == sa.bindparam("b_currency"),
)
_INSERT_BALANCE = balances.insert()


def lock_account(conn: sa.Connection, account_id: int) -> AccountRow:
    """The account row, locked until the transaction ends (PostgreSQL: FOR UPDATE; SQLite: the
    caller's BEGIN IMMEDIATE holds the database's write lock)."""
    return _account(conn.execute(_LOCK_ACCOUNT, {"b_id": account_id}).one())


def save_counters(conn: sa.Connection, account: AccountRow) -> None:
    conn.execute(
        _SAVE_COUNTERS,
        {"b_id": account.id, "order_seq": account.order_seq, "trade_seq": account.trade_seq},
    )


def ledger_lines(conn: sa.Connection, account_id: int) -> dict[str, BalanceLine]:
    return {
        r.currency: BalanceLine(r.free, r.used)
        for r in conn.execute(_LEDGER, {"b_account": account_id})
    }


def save_ledger(conn: sa.Connection, account_id: int, ledger: Ledger) -> None:
    for currency in sorted(ledger.changed):
        line = ledger.line(currency)
        done = conn.execute(
            _UPDATE_BALANCE,
            {"b_account": account_id, "b_currency": currency, "free": line.free, "used": line.used},
        )
        if done.rowcount == 0:
            conn.execute(
                _INSERT_BALANCE,
                {
                    "account_id": account_id,
                    "currency": currency,
                    "free": line.free,
                    "used": line.used,
                },
            )


# -- orders ------------------------------------------------------------------------------------


def _order_values(order: PaperOrderState) -> dict[str, Any]:
    return {
        "venue_order_id": order.venue_order_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "status": order.status.value,
        "amount": order.amount,
        "filled": order.filled,
        "price": order.price,
        "stop_price": order.stop_price,
        "average": order.average,
        "fee": order.fee,
        "fee_currency": order.fee_currency,
        "locked": order.locked,
        "lock_currency": order.lock_currency,
        "reduce_only": order.reduce_only,
        "triggered": order.triggered,
        "fresh": order.fresh,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def _order(row: sa.Row[Any]) -> PaperOrderState:
    m = row._mapping
    return PaperOrderState(
        seq=int(m["seq"]),
        venue_order_id=m["venue_order_id"],
        client_order_id=m["client_order_id"],
        symbol=m["symbol"],
        side=Side(m["side"]),
        type=OrderType(m["type"]),
        time_in_force=TimeInForce(m["time_in_force"]),
        amount=m["amount"],
        price=m["price"],
        stop_price=m["stop_price"],
        reduce_only=bool(m["reduce_only"]),
        status=OrderStatus(m["status"]),
        filled=m["filled"],
        average=m["average"],
        fee=m["fee"],
        fee_currency=m["fee_currency"],
        locked=m["locked"],
        lock_currency=m["lock_currency"],
        triggered=bool(m["triggered"]),
        fresh=bool(m["fresh"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


_INSERT_ORDER = orders.insert()
_UPDATE_ORDER = orders.update().where(
    orders.c.account_id == sa.bindparam("b_account"), orders.c.seq == sa.bindparam("b_seq")
)


def _find_query(by_venue_id: bool, by_client_id: bool) -> sa.Select[Any]:
    query = sa.select(orders).where(orders.c.account_id == sa.bindparam("b_account"))
    if by_venue_id:
        query = query.where(orders.c.venue_order_id == sa.bindparam("b_venue_id"))
    if by_client_id:
        query = query.where(orders.c.client_order_id == sa.bindparam("b_client_id"))
    return query


_FIND_ORDER = {(v, c): _find_query(v, c) for v in (False, True) for c in (False, True)}
_OPEN_ORDERS = sa.select(orders).where(
    orders.c.account_id == sa.bindparam("b_account"), orders.c.status == OrderStatus.OPEN.value
)
_OPEN_ORDERS_OF = {
    False: _OPEN_ORDERS.order_by(orders.c.seq),
    True: _OPEN_ORDERS.where(orders.c.symbol == sa.bindparam("b_symbol")).order_by(orders.c.seq),
}


def insert_order(conn: sa.Connection, account_id: int, order: PaperOrderState) -> None:
    conn.execute(
        _INSERT_ORDER, {"account_id": account_id, "seq": order.seq, **_order_values(order)}
    )


def update_order(conn: sa.Connection, account_id: int, order: PaperOrderState) -> None:
    conn.execute(
        _UPDATE_ORDER, {"b_account": account_id, "b_seq": order.seq, **_order_values(order)}
    )


def find_order(
    conn: sa.Connection,
    account_id: int,
    *,
    venue_order_id: str | None = None,
    client_order_id: str | None = None,
) -> PaperOrderState | None:
    query = _FIND_ORDER[venue_order_id is not None, client_order_id is not None]
    params = {"b_account": account_id, "b_venue_id": venue_order_id, "b_client_id": client_order_id}
    row = conn.execute(query, params).first()
    return None if row is None else _order(row)


def open_orders(
    conn: sa.Connection, account_id: int, symbol: str | None = None
) -> list[PaperOrderState]:
    """Open orders in the order they were accepted (the order candles fill them in)."""
    query = _OPEN_ORDERS_OF[symbol is not None]
    params = {"b_account": account_id, "b_symbol": symbol}
    return [_order(r) for r in conn.execute(query, params)]


# -- trades ------------------------------------------------------------------------------------


def insert_trade(conn: sa.Connection, account_id: int, seq: int, trade: Trade) -> None:
    conn.execute(
        trades.insert().values(
            account_id=account_id,
            seq=seq,
            trade_id=trade.trade_id,
            venue_order_id=trade.venue_order_id,
            client_order_id=trade.client_order_id,
            symbol=trade.symbol,
            side=trade.side.value,
            price=trade.price,
            amount=trade.amount,
            fee=trade.fee,
            fee_currency=trade.fee_currency,
            liquidity=trade.liquidity.value,
            at=trade.at,
        )
    )


def _trade(row: sa.Row[Any]) -> Trade:
    m = row._mapping
    return Trade(
        trade_id=m["trade_id"],
        venue_order_id=m["venue_order_id"],
        client_order_id=m["client_order_id"],
        symbol=m["symbol"],
        side=Side(m["side"]),
        price=m["price"],
        amount=m["amount"],
        fee=m["fee"],
        fee_currency=m["fee_currency"],
        liquidity=Liquidity(m["liquidity"]),
        at=m["at"],
    )


def select_trades(
    conn: sa.Connection, account_id: int, symbol: str, since_ms: int | None, limit: int | None
) -> list[Trade]:
    """Oldest first: from `since_ms` on, the first `limit`; without `since_ms`, the last."""
    query = sa.select(trades).where(trades.c.account_id == account_id, trades.c.symbol == symbol)
    if since_ms is not None:
        query = query.where(trades.c.at >= datetime.fromtimestamp(since_ms / 1000, UTC))
        query = query.order_by(trades.c.seq)
        if limit is not None:
            query = query.limit(limit)
        return [_trade(r) for r in conn.execute(query)]
    query = query.order_by(trades.c.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_trade(r) for r in reversed(conn.execute(query).all())]


# -- marks -------------------------------------------------------------------------------------


_CANDLE_MARK = sa.select(marks).where(
    marks.c.account_id == sa.bindparam("b_account"), marks.c.symbol == sa.bindparam("b_symbol")
)


def candle_mark(conn: sa.Connection, account_id: int, symbol: str) -> Candle | None:
    row = conn.execute(_CANDLE_MARK, {"b_account": account_id, "b_symbol": symbol}).first()
    if row is None:
        return None
    return Candle(int(row.ts_ms), row.open, row.high, row.low, row.close, row.volume)


def save_mark(conn: sa.Connection, account_id: int, symbol: str, candle: Candle) -> None:
    values = {
        "ts_ms": candle.ts_ms,
        "open": candle.open,
        "high": candle.high,
        "low": candle.low,
        "close": candle.close,
        "volume": candle.volume,
    }
    done = conn.execute(
        marks.update()
        .where(marks.c.account_id == account_id, marks.c.symbol == symbol)
        .values(**values)
    )
    if done.rowcount == 0:
        conn.execute(marks.insert().values(account_id=account_id, symbol=symbol, **values))
