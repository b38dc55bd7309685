"""A venue reached through ccxt: Binance spot and USDⓈ-M, Bybit V5, Hyperliquid.

Keys live only as long as one call. Each private call opens the credential (`vault.use`, which
registers its fields with the log redactor), builds a ccxt exchange with them, makes the call and
closes the exchange; no long-lived object holds a key. The keyless parts (markets, candles, the
HTTP connection pool and the rate limiter) are shared by every call.

Orders are never sent twice. `create_order` checks the request against the market before
sending. When the venue's answer is lost (timeout, dropped connection, 5xx, garbage), the order
may exist: it is looked up by its client order id, and re-sent (same client id) only after two
lookups, `lookup_delay` apart, both say it is not there. When neither can be confirmed, the
caller gets `OrderOutcomeUnknown` and keeps the order in flight until reconciliation.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import certifi

from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import (
    OrderNotFound,
    OrderOutcomeUnknown,
    RateLimited,
    VenueError,
    VenueUnavailable,
)
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.marketdata.exchanges import ccxt_exchange
from tradeguard.marketdata.ohlcv import candle_from_row
from tradeguard.venues.ccxt_convert import to_balance, to_market, to_order, to_trade
from tradeguard.venues.ccxt_errors import is_ambiguous, translate
from tradeguard.venues.client_ids import check_client_order_id, one_order_id
from tradeguard.venues.keycheck import KeyVerdict, judge
from tradeguard.venues.precision import checked_order, market_for
from tradeguard.venues.specs import CredentialFields, VenueSpec
from tradeguard.venues.types import (
    Balance,
    KeyPermissions,
    Market,
    MarketKind,
    Order,
    OrderRequest,
    OrderType,
    Trade,
)

__all__ = ["CcxtVenue", "CredentialSource", "RetryPolicy"]

T = TypeVar("T")

# Opens a credential's fields for one call: `lambda: vault.use(id)`, or an in-memory mapping
# for a key that is being checked before it is stored.
CredentialSource = Callable[[], AbstractContextManager[CredentialFields]]

_CCXT_TYPE = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP_MARKET: "market",
    OrderType.STOP_LIMIT: "limit",
}


@dataclass(frozen=True)
class RetryPolicy:
    """Reads are retried on `VenueUnavailable` and after a rate limit's Retry-After (if it is
    short); writes are never retried blindly."""

    read_attempts: int = 3
    backoff: float = 0.25  # seconds, doubled per attempt
    max_rate_limit_wait: float = 10.0  # a longer Retry-After (a 418 ban) is raised at once
    lookup_attempts: int = 3
    lookup_delay: float = 0.5


class CcxtVenue:
    def __init__(
        self,
        spec: VenueSpec,
        credentials: CredentialSource,
        *,
        api_url: str | None = None,
        testnet: bool = False,
        timeout_ms: int = 10_000,
        rate_limit: bool = True,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self._credentials = credentials
        self._api_url = api_url
        self._testnet = testnet
        self._timeout_ms = timeout_ms
        self._rate_limit = rate_limit
        self.retry = retry or RetryPolicy()
        self.clock = clock or SystemClock()
        self._session: aiohttp.ClientSession | None = None
        self._public: ccxt_async.Exchange | None = None
        self._markets: dict[str, Market] | None = None
        self._markets_lock = asyncio.Lock()

    # -- plumbing ------------------------------------------------------------------------------

    def _exchange(self, extra: Mapping[str, Any]) -> ccxt_async.Exchange:
        if self._session is None:
            context = ssl.create_default_context(cafile=certifi.where())
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        config = {
            "session": self._session,
            "timeout": self._timeout_ms,
            "enableRateLimit": self._rate_limit,
            "timeout_on_exit": 0,  # close() would sleep 250 ms for websocket clients we never open
            "options": dict(self.spec.options),
            "has": dict(self.spec.has),
            **extra,
        }
        exchange = ccxt_exchange(
            self.name, api_url=self._api_url, testnet=self._testnet, config=config
        )
        if self._public is not None:
            exchange.throttler = self._public.throttler  # one rate limiter per venue account
        return exchange

    def _public_exchange(self) -> ccxt_async.Exchange:
        if self._public is None:
            self._public = self._exchange({})
        return self._public

    @asynccontextmanager
    async def _private(self) -> AsyncIterator[tuple[ccxt_async.Exchange, CredentialFields]]:
        await self.load_markets()
        public = self._public_exchange()
        with self._credentials() as fields:
            exchange = self._exchange(self.spec.ccxt_config(fields))
            # ccxt's way to share an indexed market list: set_markets would re-index it on every
            # call (~0.1 s for Binance's 3,000 markets) in the order path
            exchange.set_markets_from_exchange(public)
            try:
                yield exchange, fields
            finally:
                await exchange.close()
                del exchange  # the only holder of the key's str copy

    async def _read(self, call: Callable[[], Awaitable[T]], exchange: ccxt_async.Exchange) -> T:
        """A read, retried on transient failures and short rate limits."""
        attempt = 0
        while True:
            try:
                return await call()
            except ccxt.BaseError as e:
                error = translate(e, self.name, exchange.last_response_headers)
            attempt += 1
            if not isinstance(error, VenueUnavailable) or attempt >= self.retry.read_attempts:
                raise error
            await asyncio.sleep(self._wait(error, attempt))

    def _wait(self, error: VenueError, attempt: int) -> float:
        if isinstance(error, RateLimited) and error.retry_after is not None:
            if error.retry_after > self.retry.max_rate_limit_wait:
                raise error
            return error.retry_after
        return float(self.retry.backoff * 2 ** (attempt - 1))

    # -- markets and market data ---------------------------------------------------------------

    async def load_markets(self, *, reload: bool = False) -> Mapping[str, Market]:
        async with self._markets_lock:
            if self._markets is None or reload:
                public = self._public_exchange()
                raw = await self._read(lambda: public.load_markets(reload), public)
                mode = public.precisionMode
                self._markets = {
                    symbol: to_market(m, mode, self.name, self.spec.price_significant_digits)
                    for symbol, m in raw.items()
                    if m.get("type") in {k.value for k in self.spec.kinds}
                }
            return self._markets

    async def fetch_ohlcv(
        self, symbol: str, timeframe: Timeframe, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        market = market_for(await self.load_markets(), symbol, self.name)
        public = self._public_exchange()
        rows = await self._read(
            lambda: public.fetch_ohlcv(market.symbol, timeframe.text, since_ms, limit), public
        )
        source = f"{self.name} {market.symbol} {timeframe}"
        return [candle_from_row(row, source=source) for row in rows]

    # -- account -------------------------------------------------------------------------------

    async def fetch_balance(self) -> Balance:
        async with self._private() as (ex, _):
            return to_balance(await self._read(ex.fetch_balance, ex), self.name)

    async def check_permissions(self) -> KeyPermissions:
        return (await self.check_key(self.spec.kinds)).permissions

    async def check_key(self, needs: frozenset[MarketKind]) -> KeyVerdict:
        """Ask the venue what the key can do and judge it (refusals and warnings)."""
        async with self._private() as (ex, fields):
            parsed = await self._read(lambda: self.spec.key_permissions(ex, fields), ex)
        return judge(self.name, parsed, needs, self.clock.now())

    # -- orders --------------------------------------------------------------------------------

    async def create_order(self, request: OrderRequest) -> Order:
        check_client_order_id(request.client_order_id)
        market = market_for(await self.load_markets(), request.symbol, self.name)
        request = checked_order(market, request, self.name)
        async with self._private() as (ex, _):
            order = await self._send(ex, request, resend=True)
        return order

    async def _send(self, ex: ccxt_async.Exchange, request: OrderRequest, *, resend: bool) -> Order:
        try:
            raw = await ex.create_order(
                request.symbol,
                _CCXT_TYPE[request.type],
                request.side.value,
                float(request.amount),
                None if request.price is None else float(request.price),
                self._order_params(request),
            )
        except ccxt.BaseError as e:
            if not is_ambiguous(e):
                raise translate(e, self.name, ex.last_response_headers) from None
            return await self._recover(ex, request, resend=resend)
        if not raw or raw.get("id") is None:  # a garbled 200: ccxt returns an empty order
            return await self._recover(ex, request, resend=resend)
        return await self._complete(ex, raw, request)

    def _order_params(self, request: OrderRequest) -> dict[str, Any]:
        params = self.spec.client_id_params(request.client_order_id)
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.stop_price is not None:
            params["triggerPrice"] = float(request.stop_price)
        if request.type is not OrderType.MARKET:
            params["timeInForce"] = request.time_in_force.value
        return params

    async def _complete(
        self, ex: ccxt_async.Exchange, raw: Mapping[str, Any], request: OrderRequest
    ) -> Order:
        """The order as the venue holds it. Some venues answer a create with ids and little
        else (no status): then it is fetched, rather than its state guessed."""
        if raw.get("status") is None:
            return await self._fetch(ex, request.symbol, str(raw["id"]), None)
        merged = {
            "symbol": request.symbol,
            "side": request.side.value,
            "amount": str(request.amount),
            "price": None if request.price is None else str(request.price),
            "clientOrderId": request.client_order_id,
            "type": _CCXT_TYPE[request.type],
            **{k: v for k, v in raw.items() if v is not None},
        }
        return to_order(merged, self.name)

    async def _recover(
        self, ex: ccxt_async.Exchange, request: OrderRequest, *, resend: bool
    ) -> Order:
        """The create's answer was lost. Find the order by client id; re-send only when two
        lookups agree it is not there."""
        absent = 0
        for attempt in range(self.retry.lookup_attempts):
            await asyncio.sleep(self.retry.lookup_delay * (attempt + 1))
            try:
                raw = await self.spec.order_by_client_id(
                    ex, request.symbol, request.client_order_id
                )
                return to_order(raw, self.name)
            except (ccxt.OrderNotFound, OrderNotFound):
                absent += 1
                if absent >= 2 and resend:
                    return await self._send(ex, request, resend=False)
            except ccxt.BaseError as e:
                if not is_ambiguous(e):
                    raise translate(e, self.name, ex.last_response_headers) from None
        raise OrderOutcomeUnknown(
            f"{self.name}: order {request.client_order_id} was sent and its outcome is unknown; "
            "it stays in flight until reconciliation finds it",
            venue=self.name,
            client_order_id=request.client_order_id,
        )

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        one_order_id(self.name, venue_order_id, client_order_id)
        market_for(await self.load_markets(), symbol, self.name)
        async with self._private() as (ex, _):
            return await self._fetch(ex, symbol, venue_order_id, client_order_id)

    async def _fetch(
        self,
        ex: ccxt_async.Exchange,
        symbol: str,
        venue_order_id: str | None,
        client_order_id: str | None,
    ) -> Order:
        if client_order_id is not None:
            cid = client_order_id
            raw = await self._read(lambda: self.spec.order_by_client_id(ex, symbol, cid), ex)
        else:
            raw = await self._read(lambda: ex.fetch_order(venue_order_id, symbol), ex)
        return to_order(raw, self.name)

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        one_order_id(self.name, venue_order_id, client_order_id)
        market_for(await self.load_markets(), symbol, self.name)
        async with self._private() as (ex, _):
            if venue_order_id is None:
                venue_order_id = (
                    await self._fetch(ex, symbol, None, client_order_id)
                ).venue_order_id
            order_id = venue_order_id
            try:
                await ex.cancel_order(order_id, symbol)
            except ccxt.BaseError as e:
                raise translate(e, self.name, ex.last_response_headers) from None
            return await self._fetch(ex, symbol, order_id, None)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders of one market, or of every market this venue trades."""
        markets = await self.load_markets()
        if symbol is not None:
            market_for(markets, symbol, self.name)
            scopes: list[dict[str, Any]] = [{}]
        else:
            settles = frozenset(m.settle for m in markets.values() if m.settle)
            scopes = self.spec.open_order_scopes(settles)
        rows: list[Mapping[str, Any]] = []
        async with self._private() as (ex, _):
            for params in scopes:
                rows += await self._read(
                    partial(ex.fetch_open_orders, symbol, None, None, params), ex
                )
        return [to_order(r, self.name) for r in rows]

    async def fetch_my_trades(
        self, symbol: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        market_for(await self.load_markets(), symbol, self.name)
        async with self._private() as (ex, _):
            rows = await self._read(lambda: ex.fetch_my_trades(symbol, since_ms, limit), ex)
        return [to_trade(r, self.name) for r in rows]

    async def close(self) -> None:
        if self._public is not None:
            await self._public.close()
            self._public = None
        if self._session is not None:
            await self._session.close()
            self._session = None
