"""A Bybit V5 (unified trading account) simulator on loopback, for the real ccxt `bybit` class.

The wire format follows Bybit's V5 API: every reply is the envelope
`{"retCode", "retMsg", "result", "retExtInfo", "time"}`; private calls carry `X-BAPI-API-KEY`,
`X-BAPI-TIMESTAMP`, `X-BAPI-RECV-WINDOW` and `X-BAPI-SIGN`, the hex HMAC-SHA256 of
`timestamp + api_key + recv_window + payload`, where the payload is the query string of a GET or
the JSON body of a POST, exactly the bytes received. Orders, balances and positions live in the
venue-neutral `tests/sims/matching.py`; this module translates names, errors and shapes.

One account is unified (UTA 2.0): spot and linear share one wallet. Spot `BTCUSDT` and linear
`BTCUSDT` have the same Bybit symbol, so the engine knows them as `spot:BTCUSDT` and
`linear:BTCUSDT`.

Endpoints: `/v5/market/time`, `/v5/market/instruments-info`, `/v5/market/kline`,
`/v5/market/tickers`, `/v5/user/query-api`, `/v5/account/info`, `/v5/account/wallet-balance`,
`/v5/asset/coin/query-info`, `/v5/order/create`, `/v5/order/cancel`, `/v5/order/cancel-all`,
`/v5/order/realtime`, `/v5/order/history`, `/v5/execution/list`, `/v5/position/list`.

Faults: `rate_limit_next`, `fail_next`, `malformed_next` (each for the next n requests, or only
those on one path) and `drop_reply_after_accept` (the order is booked, the reply never comes).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.sims import matching as m
from tests.sims.server import serve

from tradeguard.marketdata.candles import Candle

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "TRADE_ONLY",
    "BybitError",
    "BybitSim",
    "Instrument",
    "RecordedOrderRequest",
    "bybit_sim",
    "expiring_in",
]

SPOT = "spot"
LINEAR = "linear"
DEFAULT_UID = 100001
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60_000  # Bybit caps recv_window; a longer one is refused like a stale stamp

# Bybit's permission groups, in the order `/v5/user/query-api` lists them.
PERMISSION_GROUPS = (
    "ContractTrade",
    "Spot",
    "Wallet",
    "Options",
    "Derivatives",
    "CopyTrading",
    "BlockTrade",
    "Exchange",
    "NFT",
    "Affiliate",
    "Earn",
)
TRADE_ONLY: Mapping[str, Sequence[str]] = {
    "ContractTrade": ("Order", "Position"),
    "Spot": ("SpotTrade",),
    "Wallet": (),
}

# ccxt timeframe names and Bybit's own interval names -> Bybit's interval.
_INTERVALS = {
    "1m": "1",
    "3m": "3",
    "5m": "5",
    "15m": "15",
    "30m": "30",
    "1h": "60",
    "2h": "120",
    "4h": "240",
    "6h": "360",
    "12h": "720",
    "1d": "D",
    "1w": "W",
    "1M": "M",
}
_INTERVALS.update({v: v for v in list(_INTERVALS.values())})


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable instrument as `/v5/market/instruments-info` describes it."""

    category: str  # "spot" or "linear"
    symbol: str  # Bybit's id, e.g. BTCUSDT
    base: str
    quote: str
    tick: Decimal  # priceFilter.tickSize
    step: Decimal  # spot: lotSizeFilter.basePrecision; linear: lotSizeFilter.qtyStep
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal  # spot: minOrderAmt; linear: minNotionalValue
    max_notional: Decimal = Decimal("2000000")  # spot maxOrderAmt
    max_leverage: Decimal = Decimal("100")
    status: str = "Trading"
    price: Decimal | None = None  # the opening last price

    @property
    def key(self) -> str:
        return f"{self.category}:{self.symbol}"


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(
        SPOT,
        "BTCUSDT",
        "BTC",
        "USDT",
        tick=Decimal("0.01"),
        step=Decimal("0.000001"),
        min_qty=Decimal("0.000048"),
        max_qty=Decimal("71.73956243"),
        min_notional=Decimal("1"),
        price=Decimal("50000"),
    ),
    Instrument(
        SPOT,
        "ETHUSDT",
        "ETH",
        "USDT",
        tick=Decimal("0.01"),
        step=Decimal("0.00001"),
        min_qty=Decimal("0.00062"),
        max_qty=Decimal("1229.2336343"),
        min_notional=Decimal("1"),
        price=Decimal("3000"),
    ),
    Instrument(
        LINEAR,
        "BTCUSDT",
        "BTC",
        "USDT",
        tick=Decimal("0.10"),
        step=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        max_qty=Decimal("1190"),
        min_notional=Decimal("5"),
        price=Decimal("50000"),
    ),
    Instrument(
        LINEAR,
        "ETHUSDT",
        "ETH",
        "USDT",
        tick=Decimal("0.01"),
        step=Decimal("0.01"),
        min_qty=Decimal("0.01"),
        max_qty=Decimal("7240"),
        min_notional=Decimal("5"),
        price=Decimal("3000"),
    ),
)


@dataclass(frozen=True, slots=True)
class RecordedOrderRequest:
    """One request to an order-creating endpoint, as it arrived (before any check)."""

    path: str
    api_key: str
    body: str
    received_ms: int

    @property
    def params(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


class BybitError(Exception):
    """A refusal on the wire: Bybit's retCode and retMsg (HTTP 200, like Bybit)."""

    def __init__(self, code: int, message: str, *, http_status: int = 200) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


@dataclass(slots=True)
class _Key:
    api_key: str
    secret: str
    read_only: bool
    permissions: dict[str, list[str]]
    ips: tuple[str, ...]
    expired_at: datetime | None
    uta: int
    uid: int
    created_at: datetime
    key_id: int
    note: str


@dataclass(slots=True)
class _Meta:
    """What Bybit shows about an order that the engine does not keep."""

    category: str
    symbol: str
    order_link_id: str  # "" when the client gave none
    qty_text: str  # qty as Bybit echoes it (quote units for a spot market buy in quoteCoin)
    market_unit: str
    order_type: str  # Limit / Market
    time_in_force: str
    trigger_direction: int
    position_idx: int
    last_price_on_created: str
    key_uid: int


@dataclass(slots=True)
class _Fault:
    remaining: int
    path: str | None
    status: int = 200

    def take(self, path: str) -> bool:
        if self.remaining <= 0 or (self.path is not None and self.path != path):
            return False
        self.remaining -= 1
        return True


_TRUNCATED = '{"retCode":0,"retMsg":"OK","result":{"orderId":"'


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _s(value: Decimal | int | None) -> str:
    """A number as Bybit writes it: a plain decimal string, no exponent; "" for none."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0E-8") else text


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dec(value: object, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BybitError(10001, f"params error: {name} invalid") from None
    if not number.is_finite():
        raise BybitError(10001, f"params error: {name} invalid")
    return number


_ENGINE_STATUS = {
    m.OrderStatus.NEW: "New",
    m.OrderStatus.PARTIALLY_FILLED: "PartiallyFilled",
    m.OrderStatus.FILLED: "Filled",
    m.OrderStatus.CANCELED: "Cancelled",
    m.OrderStatus.EXPIRED: "Cancelled",
    m.OrderStatus.REJECTED: "Rejected",
}

# Permissions a trading call needs, per category (Bybit names).
_TRADE_PERMISSION = {SPOT: ("Spot", "SpotTrade"), LINEAR: ("ContractTrade", "Order")}


class BybitSim:
    """The simulator. `app` is the Starlette app; run it with `bybit_sim(sim)`."""

    def __init__(
        self,
        *,
        instruments: Sequence[Instrument] = DEFAULT_INSTRUMENTS,
        clock: Callable[[], int] = _now_ms,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        leverage: int = 10,
        hang_limit_s: float = 30.0,
    ) -> None:
        self.clock = clock
        self.engine = m.MatchingEngine(
            clock=clock, maker_fee=maker_fee, taker_fee=taker_fee, leverage=leverage
        )
        self.leverage = leverage
        self.hang_limit_s = hang_limit_s
        self.instruments: dict[str, Instrument] = {}
        for inst in instruments:
            self.add_instrument(inst)
        self.order_requests: list[RecordedOrderRequest] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self._lock = threading.RLock()
        self._keys: dict[str, _Key] = {}
        self._meta: dict[int, _Meta] = {}
        self._candles: dict[tuple[str, str], list[Candle]] = {}
        self._faults: list[tuple[str, _Fault]] = []
        self._closing = threading.Event()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST"])]
        )

    # -- setup ----------------------------------------------------------------------------

    def add_instrument(self, inst: Instrument) -> None:
        self.instruments[inst.key] = inst
        self.engine.add_market(
            m.Market(
                symbol=inst.key,
                base=inst.base,
                quote=inst.quote,
                tick=inst.tick,
                step=inst.step,
                min_amount=inst.min_qty,
                min_notional=inst.min_notional,
                kind=m.MarketKind.SPOT if inst.category == SPOT else m.MarketKind.PERP,
                max_amount=inst.max_qty,
            ),
            price=inst.price,
        )

    def add_key(
        self,
        api_key: str,
        secret: str,
        *,
        read_only: bool = False,
        permissions: Mapping[str, Sequence[str]] | None = None,
        ips: Sequence[str] = (),
        expired_at: datetime | None = None,
        uta: int = 1,
        uid: int = DEFAULT_UID,
        note: str = "tradeguard",
    ) -> None:
        """Register an API key of account `uid`. `permissions` is Bybit's shape; the default
        is a trade-only key (contract orders and positions, spot trading, no wallet rights)."""
        with self._lock:
            self._keys[api_key] = _Key(
                api_key=api_key,
                secret=secret,
                read_only=read_only,
                permissions=_permissions(TRADE_ONLY if permissions is None else permissions),
                ips=tuple(ips),
                expired_at=expired_at,
                uta=uta,
                uid=uid,
                created_at=datetime.fromtimestamp(self.clock() / 1000, UTC),
                key_id=len(self._keys) + 1,
                note=note,
            )
        self.engine.add_account(uid)

    def set_key_permissions(
        self,
        api_key: str,
        permissions: Mapping[str, Sequence[str]] | None = None,
        *,
        read_only: bool | None = None,
        ips: Sequence[str] | None = None,
        expired_at: datetime | None = None,
    ) -> None:
        """Change a key later (e.g. a key whose permissions widen after it was checked)."""
        with self._lock:
            key = self._keys[api_key]
            if permissions is not None:
                key.permissions = _permissions(permissions)
            if read_only is not None:
                key.read_only = read_only
            if ips is not None:
                key.ips = tuple(ips)
            if expired_at is not None:
                key.expired_at = expired_at

    def remove_key(self, api_key: str) -> None:
        with self._lock:
            self._keys.pop(api_key, None)

    def deposit(self, coin: str, amount: Decimal | str, *, uid: int = DEFAULT_UID) -> None:
        self.engine.deposit(uid, coin, Decimal(amount))

    def set_price(
        self, symbol: str, price: Decimal | str, *, category: str | None = None
    ) -> list[m.Trade]:
        """Move the last price of `symbol` (in both categories unless one is named); resting
        orders it crosses fill. Returns the fills."""
        trades: list[m.Trade] = []
        for cat in (category,) if category else (SPOT, LINEAR):
            if f"{cat}:{symbol}" in self.instruments:
                trades += self.engine.set_price(f"{cat}:{symbol}", Decimal(price))
        return trades

    def set_candles(self, symbol: str, interval: str, candles: Sequence[Candle]) -> None:
        """Candles for `/v5/market/kline` (both categories). `interval` is a ccxt timeframe
        (`1m`, `1h`, `1d`) or Bybit's own name (`1`, `60`, `D`)."""
        with self._lock:
            self._candles[(symbol, _INTERVALS[interval])] = sorted(candles, key=lambda c: c.ts_ms)

    # -- faults ---------------------------------------------------------------------------

    def rate_limit_next(
        self, n: int = 1, *, path: str | None = None, http_403: bool = False
    ) -> None:
        """The next `n` requests (to `path`, if given) are refused: retCode 10006 "Too many
        visits!" with the X-Bapi-Limit-* headers, or with `http_403` the IP-level HTTP 403."""
        with self._lock:
            self._faults.append(("403" if http_403 else "10006", _Fault(n, path)))

    def fail_next(self, n: int = 1, *, status: int = 503, path: str | None = None) -> None:
        """The next `n` requests (to `path`, if given) get a bare HTTP `status`."""
        with self._lock:
            self._faults.append(("status", _Fault(n, path, status)))

    def malformed_next(
        self, n: int = 1, *, path: str | None = None, processed: bool = False
    ) -> None:
        """The next `n` requests (to `path`, if given) get a truncated JSON body. With
        `processed` the request is carried out first (an order is booked), as when a reply is
        cut in transit; without, the gateway answers garbage and nothing happens."""
        with self._lock:
            self._faults.append(("cut" if processed else "malformed", _Fault(n, path)))

    def drop_reply_after_accept(self, n: int = 1) -> None:
        """The next `n` accepted orders are booked, but their reply never arrives: the request
        hangs until the client gives up (or the simulator stops)."""
        self.engine.lose_next_replies(n)

    # -- introspection for tests ----------------------------------------------------------

    def orders(self, uid: int = DEFAULT_UID) -> list[m.Order]:
        return self.engine.orders(uid)

    def close(self) -> None:
        """Release hanging replies (the fixture calls this before stopping the server)."""
        self._closing.set()

    # -- HTTP -----------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path = request.url.path
        method = request.method
        body = await request.body()
        query = request.scope.get("query_string", b"").decode("latin-1")
        with self._lock:
            self.requests.append((method, path))
            if method == "POST" and path in ("/v5/order/create", "/v5/order/create-batch"):
                self.order_requests.append(
                    RecordedOrderRequest(
                        path,
                        request.headers.get("x-bapi-api-key", ""),
                        body.decode("utf-8", "replace"),
                        self.clock(),
                    )
                )
            fault = self._take_fault(path)
        if fault == "cut":
            await self._handle(request, method, path, query, body)
            return Response(_TRUNCATED, media_type="application/json")
        if isinstance(fault, Response):
            return fault
        return await self._handle(request, method, path, query, body)

    async def _handle(
        self, request: Request, method: str, path: str, query: str, body: bytes
    ) -> Response:
        route = _ROUTES.get((method, path))
        if route is None:
            return Response(
                json.dumps({"timestamp": self.clock(), "status": 404, "error": "Not Found"}),
                status_code=404,
                media_type="application/json",
            )
        handler, private = route
        params: dict[str, Any]
        try:
            key: _Key | None = None
            if private:
                payload = query if method == "GET" else body.decode("utf-8", "replace")
                key = self._authenticate(request, payload)
            params = _parse_params(method, query, body)
            result = handler(self, key, params)
            if isinstance(result, _Hang):
                await self._hang(request)
                result = result.result
        except BybitError as err:
            if err.http_status != 200:
                return Response(err.message, status_code=err.http_status, media_type="text/plain")
            return self._reply(err.code, err.message, {}, limit_headers=private)
        return self._reply(0, "OK", result, limit_headers=private)

    def _take_fault(self, path: str) -> Response | str | None:
        for kind, fault in self._faults:
            if not fault.take(path):
                continue
            if kind == "cut":
                return kind
            if kind == "10006":
                return self._reply(
                    10006, "Too many visits!", {}, limit_headers=True, exhausted=True
                )
            if kind == "403":
                return Response("access too frequent", status_code=403, media_type="text/plain")
            if kind == "status":
                return Response(
                    "<html><body>Service Unavailable</body></html>",
                    status_code=fault.status,
                    media_type="text/html",
                )
            return Response(_TRUNCATED, media_type="application/json")
        return None

    def _reply(
        self,
        code: int,
        message: str,
        result: object,
        *,
        limit_headers: bool,
        exhausted: bool = False,
    ) -> Response:
        now = self.clock()
        envelope = {
            "retCode": code,
            "retMsg": message,
            "result": result,
            "retExtInfo": {},
            "time": now,
        }
        headers = {}
        if limit_headers:
            headers = {
                "X-Bapi-Limit": "10",
                "X-Bapi-Limit-Status": "0" if exhausted else "9",
                "X-Bapi-Limit-Reset-Timestamp": str(now + 1000),
            }
        return Response(
            json.dumps(envelope, separators=(",", ":")),
            media_type="application/json",
            headers=headers,
        )

    async def _hang(self, request: Request) -> None:
        deadline = time.monotonic() + self.hang_limit_s
        while time.monotonic() < deadline and not self._closing.is_set():
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.02)

    def _authenticate(self, request: Request, payload: str) -> _Key:
        headers = request.headers
        api_key = headers.get("x-bapi-api-key", "")
        stamp = headers.get("x-bapi-timestamp", "")
        signature = headers.get("x-bapi-sign", "")
        recv_window = headers.get("x-bapi-recv-window", "")
        if not api_key or not stamp or not signature:
            raise BybitError(
                10001,
                f"empty value: apiTimestamp[{stamp}] apiKey[{api_key}] "
                f"apiSignature[{signature}]: openapi sign params error!",
            )
        with self._lock:
            key = self._keys.get(api_key)
        if key is None:
            raise BybitError(10003, "API key is invalid.")
        now = self.clock()
        try:
            ts = int(stamp)
            window = int(recv_window) if recv_window else DEFAULT_RECV_WINDOW
        except ValueError:
            raise BybitError(10001, "params error: timestamp or recv_window invalid") from None
        if not (now - window <= ts < now + 1000) or window > MAX_RECV_WINDOW or window <= 0:
            raise BybitError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts}],server_timestamp[{now}],recv_window[{window}]",
            )
        origin = f"{stamp}{api_key}{recv_window}{payload}"
        expected = hmac.new(key.secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BybitError(10004, f"error sign! origin_string[{origin}]")
        client = request.client.host if request.client else ""
        if key.ips and "*" not in key.ips and client not in key.ips:
            raise BybitError(10010, "Unmatched IP, please check your API key's bound IP addresses.")
        if key.expired_at is not None and key.expired_at.timestamp() * 1000 <= now:
            raise BybitError(33004, "Your api key has expired.")
        return key

    # -- handlers: market data ------------------------------------------------------------

    def _time(self, _key: _Key | None, _params: dict[str, Any]) -> dict[str, str]:
        now = self.clock()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _instruments_info(self, _key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        category = _category(params, (SPOT, LINEAR, "inverse", "option"))
        symbol = params.get("symbol")
        status = params.get("status")
        rows = [
            _instrument_row(inst)
            for inst in self.instruments.values()
            if inst.category == category
            and (not symbol or inst.symbol == symbol)
            and (status is None or status == inst.status)
        ]
        return {"category": category, "list": rows, "nextPageCursor": ""}

    def _kline(self, _key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        category = _category(params, (SPOT, LINEAR))
        symbol = str(params.get("symbol", ""))
        inst = self.instruments.get(f"{category}:{symbol}")
        if inst is None:
            raise BybitError(10001, "Not supported symbols")
        interval = _INTERVALS.get(str(params.get("interval", "")))
        if interval is None:
            raise BybitError(10001, "Invalid period!")
        limit = min(max(_int(params, "limit", 200), 1), 1000)
        start = _int(params, "start")
        end = _int(params, "end")
        with self._lock:
            bars = [
                c
                for c in self._candles.get((symbol, interval), [])
                if (start is None or c.ts_ms >= start) and (end is None or c.ts_ms <= end)
            ]
        # Only a start: the first `limit` bars from it; otherwise the newest `limit` bars.
        bars = bars[:limit] if start is not None and end is None else bars[-limit:]
        rows = [
            [
                str(c.ts_ms),
                _s(c.open),
                _s(c.high),
                _s(c.low),
                _s(c.close),
                _s(c.volume),
                _s(c.volume * c.close),
            ]
            for c in reversed(bars)
        ]
        return {"category": category, "symbol": symbol, "list": rows}

    def _tickers(self, _key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        category = _category(params, (SPOT, LINEAR))
        symbol = params.get("symbol")
        rows = []
        for inst in self.instruments.values():
            if inst.category != category or (symbol and inst.symbol != symbol):
                continue
            last = self.engine.last_price(inst.key)
            if last is None:
                continue
            row = {
                "symbol": inst.symbol,
                "lastPrice": _s(last),
                "bid1Price": _s(last - inst.tick),
                "bid1Size": "1",
                "ask1Price": _s(last + inst.tick),
                "ask1Size": "1",
                "prevPrice24h": _s(last),
                "price24hPcnt": "0",
                "highPrice24h": _s(last),
                "lowPrice24h": _s(last),
                "turnover24h": "0",
                "volume24h": "0",
            }
            if category == LINEAR:
                row.update(markPrice=_s(last), indexPrice=_s(last), fundingRate="0.0001")
            rows.append(row)
        return {"category": category, "list": rows}

    # -- handlers: account ----------------------------------------------------------------

    def _query_api(self, key: _Key | None, _params: dict[str, Any]) -> dict[str, Any]:
        assert key is not None
        now = datetime.fromtimestamp(self.clock() / 1000, UTC)
        if key.expired_at is None:
            deadline_day, expired_at = -1, ""
        else:
            deadline_day = max((key.expired_at - now).days, 0)
            expired_at = _iso(key.expired_at)
        return {
            "id": str(key.key_id),
            "note": key.note,
            "apiKey": key.api_key,
            "readOnly": 1 if key.read_only else 0,
            "secret": "",
            "permissions": {g: list(v) for g, v in key.permissions.items()},
            "ips": list(key.ips) or ["*"],
            "type": 1,  # personal
            "deadlineDay": deadline_day,
            "expiredAt": expired_at,
            "createdAt": _iso(key.created_at),
            "unified": 0,
            "uta": key.uta,
            "userID": key.uid,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }

    def _account_info(self, key: _Key | None, _params: dict[str, Any]) -> dict[str, Any]:
        assert key is not None
        return {
            "unifiedMarginStatus": 6 if key.uta else 1,
            "marginMode": "REGULAR_MARGIN",
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": str(self.clock()),
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
        }

    def _wallet_balance(self, key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        assert key is not None
        if params.get("accountType") != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED.")
        wanted = {c for c in str(params.get("coin", "")).split(",") if c}
        uid = key.uid
        balances = self.engine.balances(uid)
        positions = self.engine.positions(uid)
        spot_locked: dict[str, Decimal] = {}
        order_im: dict[str, Decimal] = {}
        for order in self.engine.open_orders(uid):
            bucket = spot_locked if order.symbol.startswith(SPOT + ":") else order_im
            bucket[order.lock_asset] = bucket.get(order.lock_asset, m.ZERO) + order.lock_remaining
        position_im: dict[str, Decimal] = {}
        upl: dict[str, Decimal] = {}
        realised: dict[str, Decimal] = {}
        for pos in positions:
            settle = self.engine.market(pos.symbol).quote
            position_im[settle] = position_im.get(settle, m.ZERO) + pos.margin
            upl[settle] = upl.get(settle, m.ZERO) + self.engine.unrealized_pnl(uid, pos.symbol)
            realised[settle] = realised.get(settle, m.ZERO) + pos.realized_pnl
        coins = []
        total_equity = m.ZERO
        for coin, bal in sorted(balances.items()):
            if wanted and coin not in wanted:
                continue
            wallet = bal.total
            equity = wallet + upl.get(coin, m.ZERO)
            usd = equity * self._usd_price(coin)
            total_equity += usd
            coins.append(
                {
                    "coin": coin,
                    "equity": _s(equity),
                    "usdValue": _s(usd),
                    "walletBalance": _s(wallet),
                    "free": "",
                    "locked": _s(spot_locked.get(coin, m.ZERO)),
                    "spotHedgingQty": "0",
                    "borrowAmount": "0",
                    "availableToWithdraw": "",  # deprecated by Bybit for UTA: always ""
                    "accruedInterest": "0",
                    "totalOrderIM": _s(order_im.get(coin, m.ZERO)),
                    "totalPositionIM": _s(position_im.get(coin, m.ZERO)),
                    "totalPositionMM": "0",
                    "unrealisedPnl": _s(upl.get(coin, m.ZERO)),
                    "cumRealisedPnl": _s(realised.get(coin, m.ZERO)),
                    "bonus": "0",
                    "marginCollateral": True,
                    "collateralSwitch": True,
                    "availableToBorrow": "",
                }
            )
        total = _s(total_equity)
        account = {
            "accountType": "UNIFIED",
            "accountIMRate": "0",
            "accountMMRate": "0",
            "accountLTV": "0",
            "totalEquity": total,
            "totalWalletBalance": total,
            "totalMarginBalance": total,
            "totalAvailableBalance": total,
            "totalPerpUPL": _s(sum(upl.values(), m.ZERO)),
            "totalInitialMargin": _s(sum(position_im.values(), m.ZERO)),
            "totalMaintenanceMargin": "0",
            "coin": coins,
        }
        return {"list": [account]}

    def _usd_price(self, coin: str) -> Decimal:
        if coin in ("USDT", "USDC", "USD"):
            return Decimal(1)
        last = self.engine.last_price(f"{SPOT}:{coin}USDT")
        return last if last is not None else m.ZERO

    def _coin_info(self, _key: _Key | None, _params: dict[str, Any]) -> dict[str, Any]:
        coins = sorted({i.base for i in self.instruments.values()} | {"USDT"})
        return {
            "rows": [{"name": c, "coin": c, "remainAmount": "1000000", "chains": []} for c in coins]
        }

    # -- handlers: orders -----------------------------------------------------------------

    def _create_order(self, key: _Key | None, params: dict[str, Any]) -> object:
        assert key is not None
        category = _category(params, (SPOT, LINEAR))
        self._require_trade(key, category)
        inst = self._instrument(category, params.get("symbol"))
        side = _side(params.get("side"))
        order_type = str(params.get("orderType", ""))
        if order_type not in ("Limit", "Market"):
            raise BybitError(10001, "params error: orderType invalid")
        link_id = str(params.get("orderLinkId") or "")
        if len(link_id) > 36:
            raise BybitError(10001, "params error: orderLinkId too long (max 36)")
        tif_text = str(params.get("timeInForce") or ("IOC" if order_type == "Market" else "GTC"))
        if tif_text not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise BybitError(10001, "params error: timeInForce invalid")
        qty = _dec(params.get("qty"), "qty")
        if order_type == "Limit" and params.get("price") in (None, ""):
            raise BybitError(10001, "params error: price is required for Limit orders")
        price = _dec(params["price"], "price") if order_type == "Limit" else None
        reduce_only = params.get("reduceOnly") in (True, "true", "True")
        if reduce_only and category == SPOT:
            raise BybitError(10001, "params error: reduceOnly is for derivatives")
        trigger = params.get("triggerPrice")
        stop_price = _dec(trigger, "triggerPrice") if trigger not in (None, "") else None
        direction = _int(params, "triggerDirection", 0)
        if stop_price is not None:
            # The engine's stops trigger a buy on a rise and a sell on a fall.
            natural = 1 if side is m.Side.BUY else 2
            if category == LINEAR and direction != natural:
                raise BybitError(10001, "sim: only triggerDirection 1 for Buy, 2 for Sell")
            direction = natural
        engine_type = {
            ("Limit", False): m.OrderType.LIMIT,
            ("Market", False): m.OrderType.MARKET,
            ("Limit", True): m.OrderType.STOP_LIMIT,
            ("Market", True): m.OrderType.STOP_MARKET,
        }[(order_type, stop_price is not None)]
        last = self.engine.last_price(inst.key)
        market_unit = ""
        engine_qty = qty
        if category == SPOT and order_type == "Market":
            market_unit = str(params.get("marketUnit") or "")
            if not market_unit:
                market_unit = "quoteCoin" if side is m.Side.BUY else "baseCoin"
            if market_unit == "quoteCoin":
                if last is None or last <= 0:
                    raise BybitError(170210, "New order rejected.")
                engine_qty = (qty / last).quantize(inst.step, rounding=ROUND_DOWN)
        tif = {"IOC": m.TimeInForce.IOC, "FOK": m.TimeInForce.FOK}.get(tif_text, m.TimeInForce.GTC)
        if (
            tif_text == "PostOnly"
            and price is not None
            and last is not None
            and (last <= price if side is m.Side.BUY else last >= price)
        ):
            raise BybitError(170218, "The LIMIT-MAKER order is rejected due to invalid price.")
        try:
            order = self.engine.create_order(
                key.uid,
                inst.key,
                side,
                engine_type,
                engine_qty,
                price=price,
                stop_price=stop_price,
                time_in_force=tif if order_type == "Limit" else m.TimeInForce.GTC,
                client_order_id=link_id or None,
                reduce_only=reduce_only,
            )
        except m.MatchingError as err:
            raise _order_error(err, inst) from None
        with self._lock:
            self._meta[order.order_id] = _Meta(
                category=category,
                symbol=inst.symbol,
                order_link_id=link_id,
                qty_text=_s(qty),
                market_unit=market_unit,
                order_type=order_type,
                time_in_force=tif_text,
                trigger_direction=direction if stop_price is not None else 0,
                position_idx=_int(params, "positionIdx", 0),
                last_price_on_created=_s(last),
                key_uid=key.uid,
            )
        result = {"orderId": str(order.order_id), "orderLinkId": link_id}
        if self.engine.reply_lost():
            return _Hang(result)
        return result

    def _cancel_order(self, key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        assert key is not None
        category = _category(params, (SPOT, LINEAR))
        self._require_trade(key, category)
        inst = self._instrument(category, params.get("symbol"))
        order_id, link_id = _order_ref(params)
        if order_id is None and link_id is None:
            raise BybitError(10001, "params error: orderId or orderLinkId is required")
        try:
            order = self.engine.cancel(
                key.uid,
                order_id=order_id,
                client_order_id=link_id,
                symbol=inst.key,
            )
        except (m.OrderNotFound, m.CancelRejected, m.InvalidOrderRequest):
            if category == SPOT:
                raise BybitError(170213, "Order does not exist.") from None
            raise BybitError(110001, "Order does not exist.") from None
        return {"orderId": str(order.order_id), "orderLinkId": self._link_id(order)}

    def _cancel_all(self, key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        assert key is not None
        category = _category(params, (SPOT, LINEAR))
        self._require_trade(key, category)
        symbol = params.get("symbol")
        targets = [
            o
            for o in self.engine.open_orders(key.uid)
            if o.symbol.startswith(category + ":")
            and (not symbol or o.symbol.endswith(":" + symbol))
        ]
        done = []
        for o in targets:
            try:
                done.append(self.engine.cancel(key.uid, order_id=o.order_id))
            except m.MatchingError:
                continue
        return {
            "list": [{"orderId": str(o.order_id), "orderLinkId": self._link_id(o)} for o in done],
            "success": "1",
        }

    def _realtime(self, key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        """Open orders; with an orderId or orderLinkId, that order in any status (UTA keeps
        the recent closed ones here too)."""
        assert key is not None
        category = _category(params, (SPOT, LINEAR))
        symbol = params.get("symbol") or None
        if category == LINEAR and not (
            symbol or params.get("settleCoin") or params.get("baseCoin")
        ):
            raise BybitError(
                10001,
                "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin",
            )
        order_id, link_id = _order_ref(params)
        open_only = order_id is None and link_id is None
        orders = self._select(key, category, params, open_only=open_only)
        if order_id is not None:
            orders = [o for o in orders if o.order_id == order_id]
        if link_id is not None:
            orders = [o for o in orders if self._link_id(o) == link_id]
        limit = min(max(_int(params, "limit", 20), 1), 50)
        rows = [self._order_row(o) for o in reversed(orders)][:limit]
        return {"category": category, "list": rows, "nextPageCursor": ""}

    def _history(self, key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        assert key is not None
        category = _category(params, (SPOT, LINEAR))
        order_id, link_id = _order_ref(params)
        orders = self._select(key, category, params, open_only=False)
        if order_id is not None:
            orders = [o for o in orders if o.order_id == order_id]
        elif link_id is not None:
            orders = [o for o in orders if self._link_id(o) == link_id]
        else:
            orders = [o for o in orders if not o.status.is_open]
        status = params.get("orderStatus")
        rows = [self._order_row(o) for o in reversed(orders)]
        if status:
            rows = [r for r in rows if r["orderStatus"] == status]
        limit = min(max(_int(params, "limit", 20), 1), 50)
        return {"category": category, "list": rows[:limit], "nextPageCursor": ""}

    def _executions(self, key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        assert key is not None
        category = _category(params, (SPOT, LINEAR))
        symbol = params.get("symbol") or None
        if symbol:
            self._instrument(category, symbol)
        order_id, link_id = _order_ref(params)
        start = _int(params, "startTime")
        end = _int(params, "endTime")
        orders = {o.order_id: o for o in self.engine.orders(key.uid)}
        rows = []
        filled: dict[int, Decimal] = {}
        for trade in self.engine.trades(key.uid):
            order = orders[trade.order_id]
            filled[trade.order_id] = filled.get(trade.order_id, m.ZERO) + trade.qty
            cat, sym = trade.symbol.split(":", 1)
            if cat != category or (symbol and sym != symbol):
                continue
            if order_id is not None and trade.order_id != order_id:
                continue
            if link_id is not None and self._link_id(order) != link_id:
                continue
            if (start is not None and trade.time_ms < start) or (
                end is not None and trade.time_ms > end
            ):
                continue
            rows.append(self._execution_row(trade, order, order.qty - filled[trade.order_id]))
        limit = min(max(_int(params, "limit", 50), 1), 100)
        rows.reverse()  # newest first
        return {"category": category, "list": rows[:limit], "nextPageCursor": ""}

    def _positions(self, key: _Key | None, params: dict[str, Any]) -> dict[str, Any]:
        assert key is not None
        category = _category(params, (LINEAR,))
        symbol = params.get("symbol") or None
        settle = params.get("settleCoin") or None
        if not symbol and not settle:
            raise BybitError(
                10001, "Missing some parameters that must be filled in, symbol or settleCoin"
            )
        rows = []
        held = {p.symbol: p for p in self.engine.positions(key.uid)}
        for inst in self.instruments.values():
            if inst.category != category or (symbol and inst.symbol != symbol):
                continue
            if settle and inst.quote != settle:
                continue
            pos = held.get(inst.key)
            if pos is None and not symbol:
                continue
            pos = pos or m.Position(inst.key)
            if not pos.size and not symbol:
                continue
            rows.append(self._position_row(key.uid, inst, pos))
        return {"category": category, "list": rows, "nextPageCursor": ""}

    # -- helpers --------------------------------------------------------------------------

    def _require_trade(self, key: _Key, category: str) -> None:
        group, name = _TRADE_PERMISSION[category]
        if key.read_only or name not in key.permissions.get(group, []):
            raise BybitError(10005, "Permission denied, please check your API key permissions.")

    def _instrument(self, category: str, symbol: object) -> Instrument:
        inst = self.instruments.get(f"{category}:{symbol}")
        if inst is None:
            if category == SPOT:
                raise BybitError(170121, "Invalid symbol.")
            raise BybitError(10001, "Not supported symbols")
        return inst

    def _select(
        self, key: _Key, category: str, params: Mapping[str, Any], *, open_only: bool
    ) -> list[m.Order]:
        symbol = params.get("symbol") or None
        settle = params.get("settleCoin") or None
        base = params.get("baseCoin") or None
        order_filter = params.get("orderFilter") or None
        source = self.engine.open_orders(key.uid) if open_only else self.engine.orders(key.uid)
        out = []
        for o in source:
            cat, sym = o.symbol.split(":", 1)
            inst = self.instruments[o.symbol]
            if cat != category or (symbol and sym != symbol):
                continue
            if (settle and inst.quote != settle) or (base and inst.base != base):
                continue
            if order_filter == "StopOrder" and not o.is_stop:
                continue
            if order_filter == "Order" and o.is_stop:
                continue
            out.append(o)
        return out

    def _link_id(self, order: m.Order) -> str:
        with self._lock:
            meta = self._meta.get(order.order_id)
        return meta.order_link_id if meta else ""

    def _order_row(self, o: m.Order) -> dict[str, Any]:
        with self._lock:
            meta = self._meta[o.order_id]
        inst = self.instruments[o.symbol]
        status = _ENGINE_STATUS[o.status]
        if o.is_stop and o.status.is_open and not o.triggered:
            status = "Untriggered"
        if o.is_stop and o.status is m.OrderStatus.CANCELED and not o.triggered:
            status = "Deactivated"
        if _is_spot(o) and status == "Cancelled" and o.filled_qty:
            status = "PartiallyFilledCanceled"
        avg = o.avg_price
        open_ = o.status.is_open
        row: dict[str, Any] = {
            "orderId": str(o.order_id),
            "orderLinkId": meta.order_link_id,
            "blockTradeId": "",
            "symbol": inst.symbol,
            "price": _s(o.price) if o.price is not None else "0",
            "qty": meta.qty_text,
            "side": "Buy" if o.side is m.Side.BUY else "Sell",
            "isLeverage": "0" if inst.category == SPOT else "",
            "positionIdx": meta.position_idx,
            "orderStatus": status,
            "createType": "CreateByUser",
            "cancelType": "CancelByUser" if o.status is m.OrderStatus.CANCELED else "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": _s(avg) if o.filled_qty else ("" if inst.category == SPOT else "0"),
            "leavesQty": _s(o.remaining if open_ else m.ZERO),
            "leavesValue": _s((o.price or m.ZERO) * o.remaining if open_ else m.ZERO),
            "cumExecQty": _s(o.filled_qty),
            "cumExecValue": _s(o.cum_quote),
            "cumExecFee": _s(o.fees),
            "cumFeeDetail": {inst.quote: _s(o.fees)} if o.fees else {},
            "timeInForce": meta.time_in_force,
            "orderType": meta.order_type,
            "stopOrderType": "Stop" if o.is_stop else "",
            "orderIv": "",
            "marketUnit": meta.market_unit,
            "triggerPrice": _s(o.stop_price) if o.stop_price is not None else "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": meta.trigger_direction,
            "triggerBy": "LastPrice" if o.is_stop else "",
            "lastPriceOnCreated": meta.last_price_on_created,
            "reduceOnly": o.reduce_only,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
        }
        if inst.category != SPOT:
            # ccxt takes an order with `tpslMode` for a contract order; spot orders have none.
            row.update(tpslMode="", tpLimitPrice="", slLimitPrice="")
        return row

    def _execution_row(self, t: m.Trade, o: m.Order, leaves: Decimal) -> dict[str, Any]:
        with self._lock:
            meta = self._meta[o.order_id]
        inst = self.instruments[t.symbol]
        rate = self.engine.maker_fee if t.maker else self.engine.taker_fee
        row: dict[str, Any] = {
            "symbol": inst.symbol,
            "orderId": str(o.order_id),
            "orderLinkId": meta.order_link_id,
            "side": "Buy" if t.side is m.Side.BUY else "Sell",
            "orderPrice": _s(o.price) if o.price is not None else "0",
            "orderQty": meta.qty_text,
            "leavesQty": _s(leaves),
            "createType": "CreateByUser",
            "orderType": meta.order_type,
            "stopOrderType": "Stop" if o.is_stop else "UNKNOWN",
            "execFee": _s(t.fee),
            "feeCurrency": t.fee_asset,
            "feeCoin": t.fee_asset,
            "execId": f"{t.trade_id:08d}-sim-{t.order_id}",
            "execPrice": _s(t.price),
            "execQty": _s(t.qty),
            "execType": "Trade",
            "execValue": _s(t.quote_qty),
            "execTime": str(t.time_ms),
            "feeRate": _s(rate),
            "tradeIv": "",
            "markIv": "",
            "markPrice": _s(t.price),
            "indexPrice": "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": "0",
            "execPnl": _s(t.realized_pnl),
            "seq": t.trade_id,
            "isMaker": t.maker,
            "extraFees": "",
            "marketUnit": meta.market_unit,
        }
        return row

    def _position_row(self, uid: int, inst: Instrument, pos: m.Position) -> dict[str, Any]:
        last = self.engine.last_price(inst.key) or m.ZERO
        side = "Buy" if pos.size > 0 else "Sell" if pos.size < 0 else ""
        now = str(self.clock())
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": inst.symbol,
            "side": side,
            "size": _s(abs(pos.size)),
            "avgPrice": _s(pos.entry_price),
            "positionValue": _s(abs(pos.size) * pos.entry_price),
            "tradeMode": 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 2 if pos.size else 0,
            "leverage": str(self.leverage),
            "positionBalance": _s(pos.margin),
            "markPrice": _s(last),
            "liqPrice": "",
            "bustPrice": "",
            "positionMM": "0",
            "positionIM": _s(pos.margin),
            "tpslMode": "Full",
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "unrealisedPnl": _s(self.engine.unrealized_pnl(uid, inst.key)),
            "curRealisedPnl": _s(pos.realized_pnl),
            "cumRealisedPnl": _s(pos.realized_pnl),
            "seq": 1,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "sessionAvgPrice": "",
            "createdTime": now,
            "updatedTime": now,
        }


@dataclass(slots=True)
class _Hang:
    """An accepted order whose reply is to be lost."""

    result: object


_Handler = Callable[[BybitSim, "_Key | None", dict[str, Any]], object]
_ROUTES: dict[tuple[str, str], tuple[_Handler, bool]] = {
    ("GET", "/v5/market/time"): (BybitSim._time, False),
    ("GET", "/v5/market/instruments-info"): (BybitSim._instruments_info, False),
    ("GET", "/v5/market/kline"): (BybitSim._kline, False),
    ("GET", "/v5/market/tickers"): (BybitSim._tickers, False),
    ("GET", "/v5/user/query-api"): (BybitSim._query_api, True),
    ("GET", "/v5/account/info"): (BybitSim._account_info, True),
    ("GET", "/v5/account/wallet-balance"): (BybitSim._wallet_balance, True),
    ("GET", "/v5/asset/coin/query-info"): (BybitSim._coin_info, True),
    ("POST", "/v5/order/create"): (BybitSim._create_order, True),
    ("POST", "/v5/order/cancel"): (BybitSim._cancel_order, True),
    ("POST", "/v5/order/cancel-all"): (BybitSim._cancel_all, True),
    ("GET", "/v5/order/realtime"): (BybitSim._realtime, True),
    ("GET", "/v5/order/history"): (BybitSim._history, True),
    ("GET", "/v5/execution/list"): (BybitSim._executions, True),
    ("GET", "/v5/position/list"): (BybitSim._positions, True),
}


def _is_spot(order: m.Order) -> bool:
    return order.symbol.startswith(SPOT + ":")


def _permissions(given: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {group: [] for group in PERMISSION_GROUPS}
    out.update({group: list(values) for group, values in given.items()})
    return out


def _parse_params(method: str, query: str, body: bytes) -> dict[str, Any]:
    if method == "GET":
        return dict(parse_qsl(query, keep_blank_values=True))
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise BybitError(10001, "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BybitError(10001, "request body is not a JSON object")
    return value


def _category(params: Mapping[str, Any], allowed: Sequence[str]) -> str:
    category = params.get("category")
    if category not in allowed:
        raise BybitError(10001, f"params error: Illegal category {category!r}")
    return str(category)


def _int(params: Mapping[str, Any], name: str, default: int | None = None) -> Any:
    """An integer parameter (`default` when absent or empty); 10001 when not a number."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise BybitError(10001, f"params error: {name} invalid") from None


def _side(value: object) -> m.Side:
    if value == "Buy":
        return m.Side.BUY
    if value == "Sell":
        return m.Side.SELL
    raise BybitError(10001, "params error: side invalid")


def _order_ref(params: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """(orderId, orderLinkId); an empty value counts as absent, like Bybit. An orderId that
    is not one of ours matches nothing (-1)."""
    raw_id = params.get("orderId") or None
    link = params.get("orderLinkId") or None
    order_id = None
    if raw_id is not None:
        order_id = int(raw_id) if str(raw_id).isdigit() else -1
    return order_id, (str(link) if link is not None else None)


def _order_error(err: m.MatchingError, inst: Instrument) -> BybitError:
    spot = inst.category == SPOT
    if isinstance(err, m.InsufficientBalance):
        if spot:
            return BybitError(170131, "Insufficient balance.")
        return BybitError(110007, "ab not enough for new order")
    if isinstance(err, m.DuplicateClientOrderId):
        if spot:
            return BybitError(170141, "Duplicate clientOrderId.")
        return BybitError(110072, "OrderLinkedID is duplicate")
    if isinstance(err, m.ReduceOnlyRejected):
        return BybitError(110017, "Reduce-only rule not satisfied")
    if isinstance(err, m.WouldTriggerImmediately):
        return BybitError(110092 if not spot else 170204, "expect Rising/Falling trigger price")
    if isinstance(err, m.NoPrice):
        return BybitError(170210 if spot else 10001, "New order rejected.")
    if isinstance(err, m.FilterFailure):
        return _filter_error(err, inst)
    return BybitError(10001, f"params error: {err}")


def _filter_error(err: m.FilterFailure, inst: Instrument) -> BybitError:
    spot = inst.category == SPOT
    rule = err.rule
    if rule is m.FilterRule.PRICE_TICK:
        if spot:
            return BybitError(170134, "Order price has too many decimals.")
        return BybitError(10001, f"params error: price must be a multiple of {_s(inst.tick)}")
    if rule is m.FilterRule.AMOUNT_STEP:
        too_large = "above" in str(err)
        if spot:
            if too_large:
                return BybitError(170135, "Order quantity exceeded upper limit.")
            return BybitError(170137, "Order quantity has too many decimals.")
        if too_large:
            return BybitError(10001, "The number of contracts exceeds maximum limit allowed")
        return BybitError(10001, "Qty invalid")
    if rule is m.FilterRule.MIN_AMOUNT:
        if spot:
            return BybitError(170136, "Order quantity lower than the minimum.")
        return BybitError(10001, "The number of contracts exceeds minimum limit allowed")
    if spot:
        return BybitError(170140, "Order value exceeded lower limit.")
    return BybitError(
        110094, f"Order does not meet minimum order value {_s(inst.min_notional)}{inst.quote}"
    )


def _instrument_row(inst: Instrument) -> dict[str, Any]:
    if inst.category == SPOT:
        return {
            "symbol": inst.symbol,
            "baseCoin": inst.base,
            "quoteCoin": inst.quote,
            "innovation": "0",
            "status": inst.status,
            "marginTrading": "utaOnly",
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": _s(inst.step),
                "quotePrecision": "0.00000001",
                "minOrderQty": _s(inst.min_qty),
                "maxOrderQty": _s(inst.max_qty),
                "minOrderAmt": _s(inst.min_notional),
                "maxOrderAmt": _s(inst.max_notional),
            },
            "priceFilter": {"tickSize": _s(inst.tick)},
            "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
        }
    return {
        "symbol": inst.symbol,
        "contractType": "LinearPerpetual",
        "status": inst.status,
        "baseCoin": inst.base,
        "quoteCoin": inst.quote,
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(max(-inst.tick.normalize().as_tuple().exponent, 0)),  # type: ignore[operator]
        "leverageFilter": {
            "minLeverage": "1",
            "maxLeverage": _s(inst.max_leverage),
            "leverageStep": "0.01",
        },
        "priceFilter": {
            "minPrice": _s(inst.tick),
            "maxPrice": "1999999.80",
            "tickSize": _s(inst.tick),
        },
        "lotSizeFilter": {
            "maxOrderQty": _s(inst.max_qty),
            "minOrderQty": _s(inst.min_qty),
            "qtyStep": _s(inst.step),
            "postOnlyMaxOrderQty": _s(inst.max_qty),
            "maxMktOrderQty": _s(inst.max_qty),
            "minNotionalValue": _s(inst.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": inst.quote,
        "copyTrading": "both",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
    }


@contextmanager
def bybit_sim(sim: BybitSim) -> Iterator[str]:
    """Serve `sim` on loopback; yields the base URL to give ccxt as its API URL."""
    with serve(sim.app) as base_url:
        try:
            yield base_url
        finally:
            sim.close()


def expiring_in(days: int, *, clock: Callable[[], int] = _now_ms) -> datetime:
    """A key expiry `days` from now (for `add_key(expired_at=...)`)."""
    return datetime.fromtimestamp(clock() / 1000, UTC) + timedelta(days=days)
