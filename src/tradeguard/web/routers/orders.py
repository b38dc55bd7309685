"""The caller's orders and positions, from the risk engine's tables (tradeguard.risk.ledger).

Only the caller's own bots are read: the bot filter takes a bot id, looked up by id and owner
like every object (another user's bot is a 404). Money and quantities are decimal strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tradeguard.risk.ledger import OrderStatus, orders_of, owned_bots, positions_of
from tradeguard.web.deps import Ctx, CurrentUser
from tradeguard.web.errors import responses
from tradeguard.web.routers.common import UUID_PATTERN, bot_of

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["orders"])


class OrderOut(BaseModel):
    client_order_id: str
    bot: str
    account: str
    symbol: str
    status: Literal["open", "filled"]
    side: str | None = Field(description="buy or sell, once the order has a fill")
    filled: Decimal
    avg_price: Decimal | None
    fees: dict[str, Decimal] = Field(description="By currency")
    created_at: datetime
    updated_at: datetime


class PositionOut(BaseModel):
    bot: str
    account: str
    mode: str
    symbol: str
    qty: Decimal = Field(description="Signed: long > 0, short < 0")
    avg_price: Decimal
    trade_pnl: Decimal = Field(description="Realized so far by the open trade, fees included")
    opened_at: datetime | None


BotFilter = Annotated[
    str | None,
    Query(min_length=36, max_length=36, pattern=UUID_PATTERN, description="Only this bot (id)"),
]


@router.get("/orders", response_model=list[OrderOut], responses=responses(401, 404, 422, 429))
def list_orders(
    principal: CurrentUser,
    ctx: Ctx,
    bot: BotFilter = None,
    status: OrderStatus = "all",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[OrderOut]:
    """Open orders (approved, not yet ended) and filled ones, newest change first."""
    with ctx.engine.connect() as conn:
        names = owned_bots(conn, principal.account.name)
        if bot is not None:
            names &= {bot_of(ctx, principal, bot).name}
        views = orders_of(conn, names, status, limit)
    return [
        OrderOut(
            client_order_id=v.client_order_id,
            bot=v.bot,
            account=v.account,
            symbol=v.symbol,
            status=v.status,
            side=v.side,
            filled=v.filled,
            avg_price=v.avg_price,
            fees=v.fees,
            created_at=v.created_at,
            updated_at=v.updated_at,
        )
        for v in views
    ]


@router.get("/positions", response_model=list[PositionOut], responses=responses(401, 429))
def list_positions(principal: CurrentUser, ctx: Ctx) -> list[PositionOut]:
    """Every non-flat position of the caller's bots, by bot and symbol."""
    with ctx.engine.connect() as conn:
        views = positions_of(conn, owned_bots(conn, principal.account.name))
    return [
        PositionOut(
            bot=v.bot,
            account=v.account,
            mode=v.mode,
            symbol=v.symbol,
            qty=v.qty,
            avg_price=v.avg_price,
            trade_pnl=v.trade_pnl,
            opened_at=v.opened_at,
        )
        for v in views
    ]
