"""A Binance simulator on loopback that the real ccxt library (`binance`, `binanceusdm`) talks to.

It speaks the REST wire format of Binance spot (`/api/v3`), USDⓈ-M futures (`/fapi`) and the
few `/sapi` calls we need, signed exactly as Binance signs: `X-MBX-APIKEY`, then `timestamp`,
`recvWindow` and a hex HMAC-SHA256 `signature` over the query string followed by the body.
Spot and futures are two wallets (two `MatchingEngine`s), as on Binance.

    sim = BinanceSim()
    sim.add_key(key, secret, account="alice", futures=True)
    sim.deposit("alice", "USDT", Decimal(1000))
    with binance_sim(sim) as url:
        exchange = ccxt_exchange("binance", api_url=url, config={...})

Faults for the tests: `rate_limit_next`, `fail_next`, `malformed_next` and
`drop_reply_after_accept` (the order is booked, the reply never arrives before the client's
timeout). `order_requests` records every order-creating request that reached the simulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.sims.matching import (
    CancelRejected,
    DuplicateClientOrderId,
    FilterFailure,
    FilterRule,
    InsufficientBalance,
    InvalidOrderRequest,
    Market,
    MarketKind,
    MatchingEngine,
    MatchingError,
    NoPrice,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderType,
    ReduceOnlyRejected,
    Side,
    TimeInForce,
    Trade,
    UnknownMarket,
    WouldTriggerImmediately,
)
from tests.sims.server import serve

from tradeguard.marketdata.candles import Candle, Timeframe

__all__ = ["ApiKey", "BinanceError", "BinanceSim", "OrderRequest", "binance_sim"]

ZERO = Decimal(0)
MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000
MAX_AHEAD_MS = 1_000

Json = Any


class BinanceError(Exception):
    """A Binance error reply: HTTP status, code and message, e.g. 400 / -2010."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg


def _bad_key() -> BinanceError:
    return BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def _mandatory(name: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _illegal(name: str) -> BinanceError:
    return BinanceError(
        400,
        -1100,
        f"Illegal characters found in parameter '{name}'; "
        "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
    )


@dataclass
class ApiKey:
    api_key: str
    secret: str
    account: str
    spot: bool = True
    futures: bool = False
    withdrawals: bool = False
    internal_transfer: bool = False
    universal_transfer: bool = False
    margin: bool = False
    options: bool = False
    portfolio_margin: bool = False
    ip_restrict: bool = False
    reading: bool = True
    create_time_ms: int = 0
    trading_authority_expiration_ms: int | None = None


@dataclass(frozen=True)
class OrderRequest:
    """An order-creating request as it arrived, before any check or fault."""

    path: str
    api_key: str | None
    params: dict[str, str]
    received_ms: int


@dataclass
class _Faults:
    rate_limited: int = 0
    rate_status: int = 429
    retry_after: int = 1
    failing: int = 0
    fail_status: int = 503
    malformed: int = 0


@dataclass
class _Ctx:
    params: dict[str, str]
    key: ApiKey | None
    futures: bool


Handler = Callable[["BinanceSim", _Ctx], Json]


@dataclass(frozen=True)
class _Endpoint:
    method: str
    path: str
    handler: Handler
    signed: bool = False
    needs: str = "reading"  # reading | spot | futures | none
    creates_order: bool = False


def _d(value: Decimal, places: int = 8) -> str:
    """Binance's spot style: a fixed number of decimals ("0.00100000")."""
    return f"{value:.{places}f}"


def _f(value: Decimal) -> str:
    """Binance futures style: plain, without trailing zeros ("100.5", "0")."""
    text = f"{value.normalize():f}"
    return text if text != "-0" else "0"


def _precision(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


class BinanceSim:
    """Binance spot + USDⓈ-M futures on loopback. All state changes go through this object;
    the Starlette app (`.app`) only reads and books."""

    def __init__(
        self,
        *,
        clock: Callable[[], int] | None = None,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        futures_maker_fee: Decimal = Decimal("0.0002"),
        futures_taker_fee: Decimal = Decimal("0.0005"),
        leverage: int = 10,
        default_markets: bool = True,
        drop_hold_seconds: float = 30.0,
    ) -> None:
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        self.spot = MatchingEngine(maker_fee=maker_fee, taker_fee=taker_fee, **kwargs)
        self.futures = MatchingEngine(
            maker_fee=futures_maker_fee, taker_fee=futures_taker_fee, leverage=leverage, **kwargs
        )
        self.leverage = leverage
        self.skew_ms = 0  # added to the server's clock: tests of -1021 set it
        self.drop_hold_seconds = drop_hold_seconds
        self.order_requests: list[OrderRequest] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self._keys: dict[str, ApiKey] = {}
        self._candles: dict[tuple[str, str], list[Candle]] = {}
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.app = Starlette(routes=self._routes())
        if default_markets:
            self.add_spot_market("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "0.00001", "5")
            self.add_spot_market("ETHUSDT", "ETH", "USDT", "0.01", "0.0001", "0.0001", "5")
            self.add_perp_market("BTCUSDT", "BTC", "USDT", "0.10", "0.001", "0.001", "100")
            self.add_perp_market("ETHUSDT", "ETH", "USDT", "0.01", "0.001", "0.001", "20")
            self.set_price("BTCUSDT", Decimal("30000"))
            self.set_price("ETHUSDT", Decimal("2000"))

    # -- setup ----------------------------------------------------------------------------

    def now_ms(self) -> int:
        return self.spot.clock() + self.skew_ms

    def add_spot_market(
        self,
        symbol: str,
        base: str,
        quote: str,
        tick: str,
        step: str,
        min_qty: str,
        min_notional: str,
        max_qty: str = "9000",
    ) -> None:
        self.spot.add_market(
            Market(
                symbol,
                base,
                quote,
                Decimal(tick),
                Decimal(step),
                Decimal(min_qty),
                Decimal(min_notional),
                MarketKind.SPOT,
                Decimal(max_qty),
            )
        )

    def add_perp_market(
        self,
        symbol: str,
        base: str,
        quote: str,
        tick: str,
        step: str,
        min_qty: str,
        min_notional: str,
        max_qty: str = "1000",
    ) -> None:
        self.futures.add_market(
            Market(
                symbol,
                base,
                quote,
                Decimal(tick),
                Decimal(step),
                Decimal(min_qty),
                Decimal(min_notional),
                MarketKind.PERP,
                Decimal(max_qty),
            )
        )

    def set_price(
        self, symbol: str, price: Decimal, *, spot: bool = True, futures: bool = True
    ) -> list[Trade]:
        """Move the last price of the spot and/or perp market of that id (fills what crosses)."""
        trades: list[Trade] = []
        for engine, wanted in ((self.spot, spot), (self.futures, futures)):
            if wanted and any(m.symbol == symbol for m in engine.markets()):
                trades += engine.set_price(symbol, price)
        return trades

    def deposit(self, account: str, asset: str, amount: Decimal, *, futures: bool = False) -> None:
        (self.futures if futures else self.spot).deposit(account, asset, amount)

    def add_key(
        self,
        api_key: str,
        secret: str,
        *,
        account: str = "main",
        spot: bool = True,
        futures: bool = False,
        withdrawals: bool = False,
        internal_transfer: bool = False,
        universal_transfer: bool = False,
        margin: bool = False,
        ip_restrict: bool = False,
        reading: bool = True,
        trading_authority_expiration_ms: int | None = None,
    ) -> ApiKey:
        key = ApiKey(
            api_key,
            secret,
            account,
            spot=spot,
            futures=futures,
            withdrawals=withdrawals,
            internal_transfer=internal_transfer,
            universal_transfer=universal_transfer,
            margin=margin,
            ip_restrict=ip_restrict,
            reading=reading,
            create_time_ms=self.now_ms(),
            trading_authority_expiration_ms=trading_authority_expiration_ms,
        )
        with self._lock:
            self._keys[api_key] = key
        return key

    def set_key_permissions(self, api_key: str, **changes: Any) -> None:
        """Change a key's permissions later (`withdrawals=True`, `futures=False`, ...)."""
        with self._lock:
            key = self._keys[api_key]
            for name, value in changes.items():
                if name in ("api_key", "secret", "account") or not hasattr(key, name):
                    raise TypeError(f"not a key permission: {name}")
                setattr(key, name, value)

    def remove_key(self, api_key: str) -> None:
        with self._lock:
            self._keys.pop(api_key, None)

    def set_candles(self, symbol: str, interval: str, candles: Sequence[Candle]) -> None:
        Timeframe.parse(interval)
        with self._lock:
            self._candles[(symbol, interval)] = sorted(candles, key=lambda c: c.ts_ms)

    # -- faults ---------------------------------------------------------------------------

    def rate_limit_next(self, n: int = 1, *, status: int = 429, retry_after: int = 1) -> None:
        with self._lock:
            self._faults.rate_limited = n
            self._faults.rate_status = status
            self._faults.retry_after = retry_after

    def fail_next(self, n: int = 1, *, status: int = 503) -> None:
        with self._lock:
            self._faults.failing = n
            self._faults.fail_status = status

    def malformed_next(self, n: int = 1) -> None:
        with self._lock:
            self._faults.malformed = n

    def drop_reply_after_accept(self, n: int = 1) -> None:
        """The next `n` order creations are booked, but their reply is held back for
        `drop_hold_seconds` (longer than the client's timeout) or until the sim stops."""
        self.spot.lose_next_replies(n)
        self.futures.lose_next_replies(n)

    def release_held_replies(self) -> None:
        self._released.set()

    def orders_with_client_id(self, client_order_id: str) -> list[OrderRequest]:
        return [
            r for r in self.order_requests if r.params.get("newClientOrderId") == client_order_id
        ]

    # -- HTTP -----------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        by_path: dict[str, dict[str, _Endpoint]] = {}
        for ep in _ENDPOINTS:
            by_path.setdefault(ep.path, {})[ep.method] = ep

        def make(eps: dict[str, _Endpoint]) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                return await self._dispatch(request, eps)

            return endpoint

        return [Route(p, make(eps), methods=list(eps)) for p, eps in by_path.items()]

    def _take_fault(self) -> Response | None:
        with self._lock:
            f = self._faults
            if f.rate_limited > 0:
                f.rate_limited -= 1
                body = {
                    "code": -1003,
                    "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 requests "
                    "per minute. Please use the websocket for live updates to avoid polling "
                    "the API.",
                }
                if f.rate_status == 418:
                    body = {
                        "code": -1003,
                        "msg": "Way too many requests; IP(127.0.0.1) banned until "
                        f"{self.now_ms() + f.retry_after * 1000}. Please use the websocket for "
                        "live updates to avoid bans.",
                    }
                return JSONResponse(
                    body, status_code=f.rate_status, headers={"Retry-After": str(f.retry_after)}
                )
            if f.failing > 0:
                f.failing -= 1
                return Response(
                    "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                    status_code=f.fail_status,
                    media_type="text/html",
                )
            if f.malformed > 0:
                f.malformed -= 1
                return Response('{"symbol": "BTCUSDT", "orderId": ', media_type="application/json")
        return None

    async def _dispatch(self, request: Request, eps: dict[str, _Endpoint]) -> Response:
        ep = eps[request.method]
        self.requests.append((request.method, request.url.path))
        raw_query = request.url.query
        raw_body = (await request.body()).decode("utf-8", "replace")
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        params.update(parse_qsl(raw_body, keep_blank_values=True))
        api_key = request.headers.get("x-mbx-apikey")
        if ep.creates_order:
            with self._lock:
                self.order_requests.append(
                    OrderRequest(request.url.path, api_key, dict(params), self.now_ms())
                )
        fault = self._take_fault()
        if fault is not None:
            return fault
        futures = request.url.path.startswith("/fapi")
        try:
            key = self._authenticate(ep, api_key, params, raw_query, raw_body)
            result = ep.handler(self, _Ctx(params, key, futures))
        except BinanceError as e:
            return JSONResponse({"code": e.code, "msg": e.msg}, status_code=e.status)
        if ep.creates_order and (self.futures if futures else self.spot).reply_lost():
            await self._hold()
        return JSONResponse(result)

    async def _hold(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drop_hold_seconds
        while loop.time() < deadline and not self._released.is_set():
            await asyncio.sleep(0.02)

    def _authenticate(
        self,
        ep: _Endpoint,
        api_key: str | None,
        params: dict[str, str],
        raw_query: str,
        raw_body: str,
    ) -> ApiKey | None:
        if not ep.signed:
            return None
        if not api_key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        with self._lock:
            key = self._keys.get(api_key)
        if key is None:
            raise _bad_key()
        if "timestamp" not in params:
            raise _mandatory("timestamp")
        if "signature" not in params:
            raise _mandatory("signature")
        timestamp = _int(params, "timestamp")
        recv_window = _int(params, "recvWindow", DEFAULT_RECV_WINDOW)
        if recv_window > MAX_RECV_WINDOW or recv_window <= 0:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        now = self.now_ms()
        if timestamp > now + MAX_AHEAD_MS:
            raise BinanceError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - timestamp > recv_window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        payload = _without_signature(raw_query) + _without_signature(raw_body)
        expected = hmac.new(key.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["signature"].lower()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        if not key.reading:
            raise _bad_key()
        if ep.needs == "spot" and not key.spot:
            raise _bad_key()
        if ep.needs == "futures" and not key.futures:
            raise _bad_key()
        return key

    # -- market data ----------------------------------------------------------------------

    def _ping(self, ctx: _Ctx) -> Json:
        return {}

    def _time(self, ctx: _Ctx) -> Json:
        return {"serverTime": self.now_ms()}

    def _spot_info(self, ctx: _Ctx) -> Json:
        wanted = _symbols_param(ctx.params)
        symbols = []
        for m in self.spot.markets():
            if wanted and m.symbol not in wanted:
                continue
            symbols.append(
                {
                    "symbol": m.symbol,
                    "status": "TRADING",
                    "baseAsset": m.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": m.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": [
                        "LIMIT",
                        "LIMIT_MAKER",
                        "MARKET",
                        "STOP_LOSS",
                        "STOP_LOSS_LIMIT",
                    ],
                    "icebergAllowed": False,
                    "ocoAllowed": False,
                    "otoAllowed": False,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": False,
                    "cancelReplaceAllowed": False,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _d(m.tick),
                            "maxPrice": _d(Decimal(1_000_000)),
                            "tickSize": _d(m.tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _d(m.min_amount),
                            "maxQty": _d(m.max_amount or Decimal(9000)),
                            "stepSize": _d(m.step),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _d(m.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": _d(Decimal(9_000_000)),
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": [
                        "EXPIRE_TAKER",
                        "EXPIRE_MAKER",
                        "EXPIRE_BOTH",
                    ],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _futures_info(self, ctx: _Ctx) -> Json:
        symbols = []
        for m in self.futures.markets():
            symbols.append(
                {
                    "symbol": m.symbol,
                    "pair": m.symbol,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": m.base,
                    "quoteAsset": m.quote,
                    "marginAsset": m.quote,
                    "pricePrecision": _precision(m.tick),
                    "quantityPrecision": _precision(m.step),
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _f(m.tick),
                            "maxPrice": "4529764",
                            "tickSize": _f(m.tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _f(m.min_amount),
                            "maxQty": _f(m.max_amount or Decimal(1000)),
                            "stepSize": _f(m.step),
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": _f(m.min_amount),
                            "maxQty": _f(m.max_amount or Decimal(1000)),
                            "stepSize": _f(m.step),
                        },
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MIN_NOTIONAL", "notional": _f(m.min_notional)},
                    ],
                    "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK"],
                }
            )
        assets = sorted({m.quote for m in self.futures.markets()})
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in assets
            ],
            "symbols": symbols,
        }

    def _inverse_info(self, ctx: _Ctx) -> Json:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [],
        }

    def _klines(self, ctx: _Ctx) -> Json:
        p = ctx.params
        symbol = _required(p, "symbol")
        interval = _required(p, "interval")
        try:
            frame = Timeframe.parse(interval)
        except ValueError:
            raise BinanceError(400, -1120, "Invalid interval.") from None
        max_limit = 1500 if ctx.futures else 1000
        limit = _int(p, "limit", 500)
        if limit <= 0 or limit > max_limit:
            raise BinanceError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        engine = self.futures if ctx.futures else self.spot
        if not any(m.symbol == symbol for m in engine.markets()):
            raise BinanceError(400, -1121, "Invalid symbol.")
        start = _int(p, "startTime", -1)
        end = _int(p, "endTime", -1)
        with self._lock:
            candles = list(self._candles.get((symbol, interval), []))
        chosen = [
            c for c in candles if (start < 0 or c.ts_ms >= start) and (end < 0 or c.ts_ms <= end)
        ]
        # With a start time Binance pages forward from it; without, it gives the latest bars.
        chosen = chosen[:limit] if start >= 0 else chosen[-limit:]
        places = 8
        rows: list[Json] = []
        for c in chosen:
            quote_volume = c.volume * c.close
            fmt = _f if ctx.futures else (lambda v: _d(v, places))
            rows.append(
                [
                    c.ts_ms,
                    fmt(c.open),
                    fmt(c.high),
                    fmt(c.low),
                    fmt(c.close),
                    fmt(c.volume),
                    c.ts_ms + frame.ms - 1,
                    fmt(quote_volume),
                    1,
                    fmt(ZERO),
                    fmt(ZERO),
                    "0",
                ]
            )
        return rows

    # -- account --------------------------------------------------------------------------

    def _spot_account(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        key = ctx.key
        omit_zero = ctx.params.get("omitZeroBalances", "false").lower() == "true"
        balances = [
            {"asset": a, "free": _d(b.free), "locked": _d(b.locked)}
            for a, b in sorted(self.spot.balances(key.account).items())
            if not (omit_zero and b.total == 0)
        ]
        return {
            "makerCommission": int(self.spot.maker_fee * 10_000),
            "takerCommission": int(self.spot.taker_fee * 10_000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": _d(self.spot.maker_fee),
                "taker": _d(self.spot.taker_fee),
                "buyer": _d(ZERO),
                "seller": _d(ZERO),
            },
            "canTrade": key.spot,
            "canWithdraw": key.withdrawals,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": abs(hash(key.account)) % 10**9,
        }

    def _futures_assets(self, account: str) -> list[Json]:
        now = self.now_ms()
        out = []
        for asset, b in sorted(self.futures.balances(account).items()):
            upnl = sum(
                (
                    self.futures.unrealized_pnl(account, m.symbol)
                    for m in self.futures.markets()
                    if m.quote == asset
                ),
                ZERO,
            )
            wallet = b.total
            position_margin = sum(
                (p.margin for p in self.futures.positions(account)),
                ZERO,
            )
            out.append(
                {
                    "asset": asset,
                    "walletBalance": _f(wallet),
                    "unrealizedProfit": _f(upnl),
                    "marginBalance": _f(wallet + upnl),
                    "maintMargin": _f(position_margin / 2),
                    "initialMargin": _f(b.locked),
                    "positionInitialMargin": _f(position_margin),
                    "openOrderInitialMargin": _f(b.locked - position_margin),
                    "crossWalletBalance": _f(wallet),
                    "crossUnPnl": _f(upnl),
                    "availableBalance": _f(b.free + upnl),
                    "maxWithdrawAmount": _f(b.free),
                    "marginAvailable": True,
                    "updateTime": now,
                }
            )
        return out

    def _futures_positions(self, account: str) -> list[Json]:
        out = []
        for p in self.futures.positions(account):
            if not p.size:
                continue
            mark = self.futures.last_price(p.symbol) or p.entry_price
            upnl = self.futures.unrealized_pnl(account, p.symbol)
            market = self.futures.market(p.symbol)
            out.append(
                {
                    "symbol": p.symbol,
                    "positionSide": "BOTH",
                    "positionAmt": _f(p.size),
                    "entryPrice": _f(p.entry_price),
                    "breakEvenPrice": _f(p.entry_price),
                    "markPrice": _f(mark),
                    "unrealizedProfit": _f(upnl),
                    "unRealizedProfit": _f(upnl),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": _f(p.size * mark),
                    "marginAsset": market.quote,
                    "isolatedWallet": "0",
                    "initialMargin": _f(p.margin),
                    "maintMargin": _f(p.margin / 2),
                    "positionInitialMargin": _f(p.margin),
                    "openOrderInitialMargin": "0",
                    "leverage": str(self.leverage),
                    "marginType": "cross",
                    "isAutoAddMargin": "false",
                    "maxNotionalValue": "1000000",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": self.now_ms(),
                }
            )
        return out

    def _futures_account(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        assets = self._futures_assets(ctx.key.account)
        positions = self._futures_positions(ctx.key.account)

        def total(name: str) -> str:
            return _f(sum((Decimal(a[name]) for a in assets), ZERO))

        return {
            "totalInitialMargin": total("initialMargin"),
            "totalMaintMargin": total("maintMargin"),
            "totalWalletBalance": total("walletBalance"),
            "totalUnrealizedProfit": total("unrealizedProfit"),
            "totalMarginBalance": total("marginBalance"),
            "totalPositionInitialMargin": total("positionInitialMargin"),
            "totalOpenOrderInitialMargin": total("openOrderInitialMargin"),
            "totalCrossWalletBalance": total("crossWalletBalance"),
            "totalCrossUnPnl": total("crossUnPnl"),
            "availableBalance": total("availableBalance"),
            "maxWithdrawAmount": total("maxWithdrawAmount"),
            "assets": assets,
            "positions": positions,
        }

    def _futures_balance(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        return [
            {
                "accountAlias": "SgsR",
                "asset": a["asset"],
                "balance": a["walletBalance"],
                "crossWalletBalance": a["crossWalletBalance"],
                "crossUnPnl": a["crossUnPnl"],
                "availableBalance": a["availableBalance"],
                "maxWithdrawAmount": a["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": a["updateTime"],
            }
            for a in self._futures_assets(ctx.key.account)
        ]

    def _position_risk(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        symbol = ctx.params.get("symbol")
        return [
            p
            for p in self._futures_positions(ctx.key.account)
            if symbol is None or p["symbol"] == symbol
        ]

    def _leverage_brackets(self, ctx: _Ctx) -> Json:
        symbol = ctx.params.get("symbol")
        return [
            {
                "symbol": m.symbol,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": 125,
                        "notionalCap": 1_000_000_000,
                        "notionalFloor": 0,
                        "maintMarginRatio": 0.004,
                        "cum": 0.0,
                    }
                ],
            }
            for m in self.futures.markets()
            if symbol is None or m.symbol == symbol
        ]

    def _api_restrictions(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        k = ctx.key
        out: dict[str, Any] = {
            "ipRestrict": k.ip_restrict,
            "createTime": k.create_time_ms,
            "enableReading": k.reading,
            "enableSpotAndMarginTrading": k.spot,
            "enableWithdrawals": k.withdrawals,
            "enableInternalTransfer": k.internal_transfer,
            "enableMargin": k.margin,
            "enableFutures": k.futures,
            "permitsUniversalTransfer": k.universal_transfer,
            "enableVanillaOptions": k.options,
            "enableFixApiTrade": False,
            "enableFixReadOnly": False,
            "enablePortfolioMarginTrading": k.portfolio_margin,
        }
        if k.trading_authority_expiration_ms is not None:
            out["tradingAuthorityExpirationTime"] = k.trading_authority_expiration_ms
        return out

    def _capital_config(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        balances = self.spot.balances(ctx.key.account)
        coins = sorted({a for m in self.spot.markets() for a in (m.base, m.quote)})
        return [
            {
                "coin": c,
                "name": c,
                "depositAllEnable": True,
                "withdrawAllEnable": True,
                "free": _d(balances[c].free) if c in balances else _d(ZERO),
                "locked": _d(balances[c].locked) if c in balances else _d(ZERO),
                "freeze": "0",
                "withdrawing": "0",
                "ipoing": "0",
                "ipoable": "0",
                "storage": "0",
                "isLegalMoney": False,
                "trading": True,
                "networkList": [
                    {
                        "network": c,
                        "coin": c,
                        "name": c,
                        "withdrawIntegerMultiple": "0.00000001",
                        "isDefault": True,
                        "depositEnable": True,
                        "withdrawEnable": True,
                        "depositDesc": "",
                        "withdrawDesc": "",
                        "specialTips": "",
                        "resetAddressStatus": False,
                        "addressRegex": "",
                        "memoRegex": "",
                        "withdrawFee": "0.0005",
                        "withdrawMin": "0.001",
                        "withdrawMax": "9000",
                        "minConfirm": 1,
                        "unLockConfirm": 2,
                        "sameAddress": False,
                        "estimatedArrivalTime": 5,
                        "busy": False,
                    }
                ],
            }
            for c in coins
        ]

    def _no_margin_pairs(self, ctx: _Ctx) -> Json:
        return []  # the simulator has no margin trading

    # -- orders ---------------------------------------------------------------------------

    def _engine(self, ctx: _Ctx) -> MatchingEngine:
        return self.futures if ctx.futures else self.spot

    def _new_order(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        p = ctx.params
        engine = self._engine(ctx)
        symbol = _required(p, "symbol")
        side_text = _required(p, "side")
        type_text = _required(p, "type")
        try:
            engine.market(symbol)
        except UnknownMarket:
            raise BinanceError(400, -1121, "Invalid symbol.") from None
        if side_text not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        side = Side.BUY if side_text == "BUY" else Side.SELL
        types = _FUTURES_TYPES if ctx.futures else _SPOT_TYPES
        if type_text not in types:
            raise BinanceError(400, -1116, "Invalid orderType.")
        otype = types[type_text]
        price = _decimal(p, "price")
        stop = _decimal(p, "stopPrice")
        qty = _decimal(p, "quantity")
        quote_qty = None if ctx.futures else _decimal(p, "quoteOrderQty")
        if otype in (OrderType.LIMIT, OrderType.STOP_LIMIT) and price is None:
            raise _mandatory("price")
        if otype in (OrderType.STOP_LIMIT, OrderType.STOP_MARKET) and stop is None:
            raise _mandatory("stopPrice")
        if otype is OrderType.MARKET and price is not None and not ctx.futures:
            raise BinanceError(400, -1106, "Parameter 'price' sent when not required.")
        if qty is None and quote_qty is not None and otype is OrderType.MARKET:
            last = engine.last_price(symbol)
            step = engine.market(symbol).step
            if last is None:
                raise BinanceError(400, -2010, "Market is closed.")
            qty = (quote_qty / last // step) * step
        if qty is None:
            raise _mandatory("quantity")
        tif_text = p.get("timeInForce")
        if type_text in ("LIMIT", "STOP_LOSS_LIMIT", "STOP") and not tif_text:
            raise _mandatory("timeInForce")
        if tif_text is not None and tif_text not in ("GTC", "IOC", "FOK"):
            raise BinanceError(400, -1115, "Invalid timeInForce.")
        tif = TimeInForce(tif_text or "GTC")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        if reduce_only and not ctx.futures:
            raise BinanceError(400, -1104, "Not all sent parameters were read.")
        client_id = p.get("newClientOrderId")
        if client_id is not None and not _client_id_ok(client_id):
            raise _illegal("newClientOrderId")
        last = engine.last_price(symbol)
        if (
            type_text == "LIMIT_MAKER"
            and last is not None
            and price is not None
            and ((side is Side.BUY and last <= price) or (side is Side.SELL and last >= price))
        ):
            raise BinanceError(400, -2010, "Order would immediately match and take.")
        try:
            order = engine.create_order(
                ctx.key.account,
                symbol,
                side,
                otype,
                qty,
                price=price,
                stop_price=stop,
                time_in_force=tif,
                client_order_id=client_id,
                reduce_only=reduce_only,
            )
        except MatchingError as e:
            raise self._order_error(e, ctx.futures) from None
        if ctx.futures:
            return self._futures_order(order)
        resp_type = p.get("newOrderRespType", "FULL")
        return self._spot_order_reply(order, resp_type, type_text)

    def _order_error(self, e: MatchingError, futures: bool) -> BinanceError:
        if isinstance(e, InsufficientBalance):
            if futures:
                return BinanceError(400, -2019, "Margin is insufficient.")
            return BinanceError(
                400, -2010, "Account has insufficient balance for requested action."
            )
        if isinstance(e, DuplicateClientOrderId):
            if futures:
                return BinanceError(400, -4116, "ClientOrderId is duplicated.")
            return BinanceError(400, -2010, "Duplicate order sent.")
        if isinstance(e, FilterFailure):
            if futures:
                return {
                    FilterRule.PRICE_TICK: BinanceError(
                        400, -4014, "Price not increased by tick size."
                    ),
                    FilterRule.AMOUNT_STEP: BinanceError(
                        400, -1111, "Precision is over the maximum defined for this asset."
                    ),
                    FilterRule.MIN_AMOUNT: BinanceError(
                        400, -4003, "Quantity less than or equal to zero."
                    ),
                    FilterRule.MIN_NOTIONAL: BinanceError(
                        400,
                        -4164,
                        "Order's notional must be no smaller than 100 (unless you choose "
                        "reduce only).",
                    ),
                }[e.rule]
            name = {
                FilterRule.PRICE_TICK: "PRICE_FILTER",
                FilterRule.AMOUNT_STEP: "LOT_SIZE",
                FilterRule.MIN_AMOUNT: "LOT_SIZE",
                FilterRule.MIN_NOTIONAL: "NOTIONAL",
            }[e.rule]
            return BinanceError(400, -1013, f"Filter failure: {name}")
        if isinstance(e, ReduceOnlyRejected):
            return BinanceError(400, -2022, "ReduceOnly Order is rejected.")
        if isinstance(e, WouldTriggerImmediately):
            if futures:
                return BinanceError(400, -2021, "Order would immediately trigger.")
            return BinanceError(400, -2010, "Stop price would trigger immediately.")
        if isinstance(e, NoPrice):
            return BinanceError(400, -2010, "Market is closed.")
        if isinstance(e, InvalidOrderRequest):
            return BinanceError(400, -1102, str(e))
        return BinanceError(400, -1000, "An unknown error occured while processing the request.")

    def _find_order(self, ctx: _Ctx) -> Order:
        assert ctx.key is not None
        p = ctx.params
        symbol = _required(p, "symbol")
        order_id = _int(p, "orderId", -1)
        client_id = p.get("origClientOrderId")
        if order_id < 0 and not client_id:
            raise BinanceError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        try:
            return self._engine(ctx).order(
                ctx.key.account,
                order_id=order_id if order_id >= 0 else None,
                client_order_id=client_id,
                symbol=symbol,
            )
        except (OrderNotFound, InvalidOrderRequest):
            raise BinanceError(400, -2013, "Order does not exist.") from None

    def _get_order(self, ctx: _Ctx) -> Json:
        order = self._find_order(ctx)
        return self._futures_order(order) if ctx.futures else self._spot_order(order)

    def _cancel_order(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        try:
            order = self._find_order(ctx)
        except BinanceError:
            raise BinanceError(400, -2011, "Unknown order sent.") from None
        try:
            order = self._engine(ctx).cancel(ctx.key.account, order_id=order.order_id)
        except (CancelRejected, OrderNotFound):
            raise BinanceError(400, -2011, "Unknown order sent.") from None
        if ctx.futures:
            return self._futures_order(order)
        reply = self._spot_order(order)
        reply["origClientOrderId"] = order.client_order_id
        reply["transactTime"] = order.updated_ms
        for name in ("time", "updateTime", "isWorking", "workingTime", "origQuoteOrderQty"):
            reply.pop(name, None)
        return reply

    def _open_orders(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        symbol = ctx.params.get("symbol")
        orders = self._engine(ctx).open_orders(ctx.key.account, symbol)
        render = self._futures_order if ctx.futures else self._spot_order
        return [render(o) for o in orders]

    def _cancel_open_orders(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        symbol = _required(ctx.params, "symbol")
        orders = self._engine(ctx).cancel_all(ctx.key.account, symbol)
        if ctx.futures:
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        return [self._spot_order(o) for o in orders]

    def _all_orders(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        symbol = _required(ctx.params, "symbol")
        orders = self._engine(ctx).orders(ctx.key.account, symbol)
        start = _int(ctx.params, "startTime", -1)
        limit = _int(ctx.params, "limit", 500)
        orders = [o for o in orders if start < 0 or o.created_ms >= start][:limit]
        render = self._futures_order if ctx.futures else self._spot_order
        return [render(o) for o in orders]

    def _my_trades(self, ctx: _Ctx) -> Json:
        assert ctx.key is not None
        p = ctx.params
        symbol = _required(p, "symbol") if not ctx.futures else p.get("symbol")
        limit = _int(p, "limit", 500)
        if limit <= 0 or limit > 1000:
            raise BinanceError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        start = _int(p, "startTime", -1)
        end = _int(p, "endTime", -1)
        order_id = _int(p, "orderId", -1)
        from_id = _int(p, "fromId", -1)
        trades = self._engine(ctx).trades(
            ctx.key.account,
            symbol,
            since_ms=start if start >= 0 else None,
            until_ms=end if end >= 0 else None,
            order_id=order_id if order_id >= 0 else None,
            from_id=from_id if from_id >= 0 else None,
            limit=limit,
        )
        if ctx.futures:
            return [
                {
                    "buyer": t.side is Side.BUY,
                    "commission": _f(t.fee),
                    "commissionAsset": t.fee_asset,
                    "id": t.trade_id,
                    "maker": t.maker,
                    "orderId": t.order_id,
                    "price": _f(t.price),
                    "qty": _f(t.qty),
                    "quoteQty": _f(t.quote_qty),
                    "realizedPnl": _f(t.realized_pnl),
                    "side": "BUY" if t.side is Side.BUY else "SELL",
                    "positionSide": "BOTH",
                    "symbol": t.symbol,
                    "time": t.time_ms,
                }
                for t in trades
            ]
        return [
            {
                "symbol": t.symbol,
                "id": t.trade_id,
                "orderId": t.order_id,
                "orderListId": -1,
                "price": _d(t.price),
                "qty": _d(t.qty),
                "quoteQty": _d(t.quote_qty),
                "commission": _d(t.fee),
                "commissionAsset": t.fee_asset,
                "time": t.time_ms,
                "isBuyer": t.side is Side.BUY,
                "isMaker": t.maker,
                "isBestMatch": True,
            }
            for t in trades
        ]

    # -- order rendering ------------------------------------------------------------------

    def _spot_order(self, o: Order) -> dict[str, Any]:
        return {
            "symbol": o.symbol,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "price": _d(o.price or ZERO),
            "origQty": _d(o.qty),
            "executedQty": _d(o.filled_qty),
            "cummulativeQuoteQty": _d(o.cum_quote),
            "status": _SPOT_STATUS[o.status],
            "timeInForce": o.time_in_force.value,
            "type": _spot_type(o),
            "side": "BUY" if o.side is Side.BUY else "SELL",
            "stopPrice": _d(o.stop_price or ZERO),
            "icebergQty": _d(ZERO),
            "time": o.created_ms,
            "updateTime": o.updated_ms,
            "isWorking": not o.is_stop or o.triggered,
            "workingTime": o.created_ms,
            "origQuoteOrderQty": _d(ZERO),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def _spot_order_reply(self, o: Order, resp_type: str, type_text: str) -> Json:
        ack = {
            "symbol": o.symbol,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "transactTime": o.created_ms,
        }
        if resp_type == "ACK":
            return ack
        full = self._spot_order(o)
        result = {
            **ack,
            "price": full["price"],
            "origQty": full["origQty"],
            "executedQty": full["executedQty"],
            "origQuoteOrderQty": full["origQuoteOrderQty"],
            "cummulativeQuoteQty": full["cummulativeQuoteQty"],
            "status": full["status"],
            "timeInForce": full["timeInForce"],
            "type": type_text,
            "side": full["side"],
            "workingTime": o.created_ms,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if o.stop_price is not None:
            result["stopPrice"] = full["stopPrice"]
        if resp_type == "FULL":
            result["fills"] = [
                {
                    "price": _d(t.price),
                    "qty": _d(t.qty),
                    "commission": _d(t.fee),
                    "commissionAsset": t.fee_asset,
                    "tradeId": t.trade_id,
                }
                for t in self.spot.trades(o.account, o.symbol, order_id=o.order_id)
            ]
        return result

    def _futures_order(self, o: Order) -> dict[str, Any]:
        ftype = _futures_type(o)
        return {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "status": _SPOT_STATUS[o.status],
            "clientOrderId": o.client_order_id,
            "price": _f(o.price or ZERO),
            "avgPrice": _f(o.avg_price),
            "origQty": _f(o.qty),
            "executedQty": _f(o.filled_qty),
            "cumQty": _f(o.filled_qty),
            "cumQuote": _f(o.cum_quote),
            "timeInForce": o.time_in_force.value,
            "type": ftype,
            "reduceOnly": o.reduce_only,
            "closePosition": False,
            "side": "BUY" if o.side is Side.BUY else "SELL",
            "positionSide": "BOTH",
            "stopPrice": _f(o.stop_price or ZERO),
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": ftype,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": o.created_ms,
            "updateTime": o.updated_ms,
        }


_SPOT_TYPES = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "LIMIT_MAKER": OrderType.LIMIT,
    "STOP_LOSS": OrderType.STOP_MARKET,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
}
_FUTURES_TYPES = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "STOP": OrderType.STOP_LIMIT,
}
# Binance's own names match the venue-neutral ones (EXPIRED stands for EXPIRED and
# EXPIRED_IN_MATCH alike).
_SPOT_STATUS = {s: s.value for s in OrderStatus}


def _spot_type(o: Order) -> str:
    return {
        OrderType.MARKET: "MARKET",
        OrderType.LIMIT: "LIMIT",
        OrderType.STOP_MARKET: "STOP_LOSS",
        OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
    }[o.type]


def _futures_type(o: Order) -> str:
    return {
        OrderType.MARKET: "MARKET",
        OrderType.LIMIT: "LIMIT",
        OrderType.STOP_MARKET: "STOP_MARKET",
        OrderType.STOP_LIMIT: "STOP",
    }[o.type]


def _client_id_ok(value: str) -> bool:
    return 0 < len(value) <= 36 and all(c.isalnum() or c in ".:/_-" for c in value)


def _without_signature(raw: str) -> str:
    if not raw:
        return ""
    kept = [part for part in raw.split("&") if not part.startswith("signature=")]
    return "&".join(kept)


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _mandatory(name)
    return value


def _int(params: dict[str, str], name: str, default: int | None = None) -> int:
    value = params.get(name)
    if value is None or value == "":
        if default is None:
            raise _mandatory(name)
        return default
    try:
        return int(value)
    except ValueError:
        raise _illegal(name) from None


def _decimal(params: dict[str, str], name: str) -> Decimal | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _illegal(name) from None
    if not number.is_finite() or number < 0:
        raise _illegal(name)
    return number


def _symbols_param(params: dict[str, str]) -> set[str]:
    if "symbol" in params:
        return {params["symbol"]}
    if "symbols" in params:
        try:
            return set(json.loads(params["symbols"]))
        except ValueError:
            raise _illegal("symbols") from None
    return set()


def _ep(
    method: str,
    path: str,
    handler: Handler,
    *,
    signed: bool = False,
    needs: str = "reading",
    creates_order: bool = False,
) -> _Endpoint:
    return _Endpoint(method, path, handler, signed, needs, creates_order)


S = BinanceSim
_ENDPOINTS: list[_Endpoint] = [
    # public
    _ep("GET", "/api/v3/ping", S._ping),
    _ep("GET", "/api/v3/time", S._time),
    _ep("GET", "/api/v3/exchangeInfo", S._spot_info),
    _ep("GET", "/api/v3/klines", S._klines),
    _ep("GET", "/fapi/v1/ping", S._ping),
    _ep("GET", "/fapi/v1/time", S._time),
    _ep("GET", "/fapi/v1/exchangeInfo", S._futures_info),
    _ep("GET", "/fapi/v1/klines", S._klines),
    _ep("GET", "/dapi/v1/exchangeInfo", S._inverse_info),
    # spot, signed
    _ep("GET", "/api/v3/account", S._spot_account, signed=True),
    _ep("POST", "/api/v3/order", S._new_order, signed=True, needs="spot", creates_order=True),
    _ep("GET", "/api/v3/order", S._get_order, signed=True),
    _ep("DELETE", "/api/v3/order", S._cancel_order, signed=True, needs="spot"),
    _ep("GET", "/api/v3/openOrders", S._open_orders, signed=True),
    _ep("DELETE", "/api/v3/openOrders", S._cancel_open_orders, signed=True, needs="spot"),
    _ep("GET", "/api/v3/allOrders", S._all_orders, signed=True),
    _ep("GET", "/api/v3/myTrades", S._my_trades, signed=True),
    # wallet, signed
    _ep("GET", "/sapi/v1/account/apiRestrictions", S._api_restrictions, signed=True),
    _ep("GET", "/sapi/v1/capital/config/getall", S._capital_config, signed=True),
    _ep("GET", "/sapi/v1/margin/allPairs", S._no_margin_pairs, signed=True),
    _ep("GET", "/sapi/v1/margin/isolated/allPairs", S._no_margin_pairs, signed=True),
    # USDⓈ-M futures, signed: every one needs the futures permission
    _ep("GET", "/fapi/v2/account", S._futures_account, signed=True, needs="futures"),
    _ep("GET", "/fapi/v3/account", S._futures_account, signed=True, needs="futures"),
    _ep("GET", "/fapi/v2/balance", S._futures_balance, signed=True, needs="futures"),
    _ep("GET", "/fapi/v3/balance", S._futures_balance, signed=True, needs="futures"),
    _ep("GET", "/fapi/v1/leverageBracket", S._leverage_brackets, signed=True, needs="futures"),
    _ep("GET", "/fapi/v2/positionRisk", S._position_risk, signed=True, needs="futures"),
    _ep("GET", "/fapi/v3/positionRisk", S._position_risk, signed=True, needs="futures"),
    _ep("POST", "/fapi/v1/order", S._new_order, signed=True, needs="futures", creates_order=True),
    _ep("GET", "/fapi/v1/order", S._get_order, signed=True, needs="futures"),
    _ep("DELETE", "/fapi/v1/order", S._cancel_order, signed=True, needs="futures"),
    _ep("GET", "/fapi/v1/openOrders", S._open_orders, signed=True, needs="futures"),
    _ep("DELETE", "/fapi/v1/allOpenOrders", S._cancel_open_orders, signed=True, needs="futures"),
    _ep("GET", "/fapi/v1/allOrders", S._all_orders, signed=True, needs="futures"),
    _ep("GET", "/fapi/v1/userTrades", S._my_trades, signed=True, needs="futures"),
]
del S


@contextmanager
def binance_sim(sim: BinanceSim | None = None) -> Iterator[str]:
    """Serve `sim` (a fresh one when None) on loopback; yields the base URL."""
    sim = sim if sim is not None else BinanceSim()
    sim._released.clear()
    with serve(sim.app) as url:
        try:
            yield url
        finally:
            sim.release_held_replies()
