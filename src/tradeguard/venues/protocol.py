"""The one interface between tradeguard and a venue. The paper venue and every ccxt venue
implement it; the gateway and backtests speak only to it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.venues.types import Balance, KeyPermissions, Market, Order, OrderRequest, Trade

__all__ = ["Venue"]


class Venue(Protocol):
    """An account at a venue. Every method is a coroutine; errors are `VenueError`s.

    `create_order` checks the request against the market's limits before anything is sent
    (`InvalidOrder`), and never sends twice: after a timeout it looks the order up by its client
    order id, and raises `OrderOutcomeUnknown` rather than guess.
    `fetch_order` and `cancel_order` take exactly one of a venue order id or a client order id.
    """

    name: str

    async def load_markets(self, *, reload: bool = False) -> Mapping[str, Market]: ...

    async def fetch_balance(self) -> Balance: ...

    async def create_order(self, request: OrderRequest) -> Order: ...

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> Order: ...

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> Order: ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def fetch_my_trades(
        self, symbol: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[Trade]: ...

    async def fetch_ohlcv(
        self, symbol: str, timeframe: Timeframe, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]: ...

    async def check_permissions(self) -> KeyPermissions: ...

    async def close(self) -> None: ...
