"""Read-only views of a user's orders and positions, from the risk engine's tables.

- An *open* order is one the risk engine approved and journaled (`risk_orders`) and has not
  seen end; a *filled* order has ended with at least one fill in the ledger (`risk_fills`). An
  order that ended without a fill leaves no row behind, so it is not listed.
- A position is what a bot's book (`risk_bots`) holds: signed quantity, average entry price
  and what the open trade has realized so far.

Whose a bot is: the `user_name` of its `bots` row and of its `risk_bots` row. A name claimed
by another user in either table is nobody's here, so a namesake can never read another
user's orders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, cast

import sqlalchemy as sa

from tradeguard.risk.store import load_book
from tradeguard.store.models import BotRow, RiskBot, RiskFill, RiskOrder

__all__ = ["OrderStatus", "OrderView", "PositionView", "orders_of", "owned_bots", "positions_of"]

_BOTS = cast(sa.Table, BotRow.__table__)
_RISK_BOTS = cast(sa.Table, RiskBot.__table__)
_ORDERS = cast(sa.Table, RiskOrder.__table__)
_FILLS = cast(sa.Table, RiskFill.__table__)

OrderStatus = Literal["open", "filled", "all"]


@dataclass(frozen=True)
class OrderView:
    client_order_id: str
    bot: str
    account: str
    symbol: str
    status: Literal["open", "filled"]
    created_at: datetime  # journaled (open) or first fill (filled)
    updated_at: datetime  # the last fill, or created_at
    side: str | None = None  # known from its fills
    filled: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    fees: dict[str, Decimal] = field(default_factory=dict)  # by currency


@dataclass(frozen=True)
class PositionView:
    bot: str
    account: str
    mode: str
    symbol: str
    qty: Decimal  # signed: long > 0, short < 0
    avg_price: Decimal
    trade_pnl: Decimal  # realized so far by the open trade, fees included
    opened_at: datetime | None


def owned_bots(conn: sa.Connection, user: str) -> set[str]:
    """The names of `user`'s bots (see the module docstring for namesakes)."""
    owners: dict[str, set[str]] = defaultdict(set)
    for table in (_BOTS, _RISK_BOTS):
        for name, owner in conn.execute(sa.select(table.c.name, table.c.user_name)):
            owners[name].add(owner)
    return {name for name, who in owners.items() if who == {user}}


def _fills(conn: sa.Connection, ids: Collection[str]) -> dict[str, list[Any]]:
    by_order: dict[str, list[Any]] = defaultdict(list)
    if ids:
        query = sa.select(_FILLS).where(_FILLS.c.client_order_id.in_(list(ids)))
        for row in conn.execute(query.order_by(_FILLS.c.filled_at)):
            by_order[row.client_order_id].append(row)
    return by_order


def _view(
    cid: str, bot: str, account: str, symbol: str, created: datetime | None, fills: list[Any]
) -> OrderView:
    amount = sum((f.amount for f in fills), Decimal(0))
    fees: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        fees[f.fee_currency] += f.fee
    first = created or fills[0].filled_at
    return OrderView(
        client_order_id=cid,
        bot=bot,
        account=account,
        symbol=symbol,
        status="open" if created is not None else "filled",
        created_at=first,
        updated_at=fills[-1].filled_at if fills else first,
        side=fills[0].side if fills else None,
        filled=amount,
        avg_price=sum((f.amount * f.price for f in fills), Decimal(0)) / amount if amount else None,
        fees=dict(fees),
    )


def _open(conn: sa.Connection, bots: Sequence[str], limit: int) -> list[OrderView]:
    query = (
        sa.select(_ORDERS)
        .where(_ORDERS.c.bot.in_(bots))
        .order_by(_ORDERS.c.created_at.desc())
        .limit(limit)
    )
    rows = conn.execute(query).all()
    fills = _fills(conn, [r.client_order_id for r in rows])
    return [
        _view(r.client_order_id, r.bot, r.account, r.symbol, r.created_at, fills[r.client_order_id])
        for r in rows
    ]


def _filled(conn: sa.Connection, bots: Sequence[str], limit: int) -> list[OrderView]:
    still_open = sa.select(_ORDERS.c.client_order_id)
    last = sa.func.max(_FILLS.c.filled_at)
    query = (
        sa.select(_FILLS.c.client_order_id)
        .where(
            _FILLS.c.bot.in_(bots),
            _FILLS.c.client_order_id != "",  # a fill no order of ours placed (reconciled)
            _FILLS.c.client_order_id.not_in(still_open),
        )
        .group_by(_FILLS.c.client_order_id)
        .order_by(last.desc())
        .limit(limit)
    )
    ids = list(conn.scalars(query))
    fills = _fills(conn, ids)
    views = []
    for cid in ids:
        first = fills[cid][0]
        views.append(_view(cid, first.bot, first.account, first.symbol, None, fills[cid]))
    return views


def orders_of(
    conn: sa.Connection, bots: Collection[str], status: OrderStatus, limit: int
) -> list[OrderView]:
    """The newest `limit` orders of these bots, newest (last change) first."""
    names = sorted(bots)
    if not names:
        return []
    views = []
    if status in ("open", "all"):
        views += _open(conn, names, limit)
    if status in ("filled", "all"):
        views += _filled(conn, names, limit)
    views.sort(key=lambda v: v.updated_at, reverse=True)
    return views[:limit]


def positions_of(conn: sa.Connection, bots: Collection[str]) -> list[PositionView]:
    """Every non-flat position of these bots, by bot and symbol."""
    if not bots:
        return []
    query = sa.select(_RISK_BOTS).where(_RISK_BOTS.c.name.in_(sorted(bots)))
    views = []
    for row in conn.execute(query.order_by(_RISK_BOTS.c.name)):
        book, _meters = load_book(row.book)
        views += [
            PositionView(
                row.name, row.account, row.mode, s, p.qty, p.avg_price, p.trade_pnl, p.opened_at
            )
            for s, p in sorted(book.positions.items())
            if p.qty
        ]
    return views
