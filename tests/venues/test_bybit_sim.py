"""The real ccxt Bybit client against the loopback V5 simulator (tests/sims/bybit.py).

Each test runs one ccxt exchange in `asyncio.run`, pointed at a fresh simulator through
`ccxt_exchange("bybit", api_url=...)`, with keys made at run time. The options in `CCXT_OPTIONS`
are the ones a caller passes: spot and linear markets only, a unified trading account (so ccxt
skips its query-api / account-info probe) and no currency list.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import ccxt.async_support as ccxt_async
import pytest
from ccxt.base import errors as ccxt_errors
from tests.sims.bybit import BybitSim, bybit_sim

from tradeguard.marketdata.candles import Candle
from tradeguard.marketdata.exchanges import ccxt_exchange

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
CCXT_CONFIG: dict[str, Any] = {
    "has": {"fetchCurrencies": False},  # else load_markets calls /v5/asset/coin/query-info
    "options": {
        "fetchMarkets": {"types": ["spot", "linear"]},
        "enableUnifiedAccount": True,
        "enableUnifiedMargin": False,
    },
    "rateLimit": 1,  # the simulator needs no pacing
    "timeout_on_exit": 0,  # ccxt otherwise sleeps 250 ms in close()
}
T = TypeVar("T")


def _key() -> tuple[str, str]:
    return secrets.token_hex(9), secrets.token_urlsafe(27)


@dataclass
class Venue:
    sim: BybitSim
    url: str
    api_key: str
    secret: str

    @asynccontextmanager
    async def client(
        self,
        *,
        api_key: str | None = None,
        secret: str | None = None,
        options: dict[str, Any] | None = None,
        **config: Any,
    ) -> AsyncIterator[ccxt_async.Exchange]:
        merged = {**CCXT_CONFIG, **config}
        merged["options"] = {**CCXT_CONFIG["options"], **(options or {})}
        exchange = ccxt_exchange(
            "bybit",
            api_url=self.url,
            config={
                "apiKey": api_key or self.api_key,
                "secret": secret or self.secret,
                **merged,
            },
        )
        try:
            yield exchange
        finally:
            await exchange.close()

    def run(self, body: Callable[[ccxt_async.Exchange], Awaitable[T]], **kwargs: Any) -> T:
        async def main() -> T:
            async with self.client(**kwargs) as exchange:
                return await body(exchange)

        return asyncio.run(main())


@pytest.fixture
def venue() -> Iterator[Venue]:
    sim = BybitSim()
    api_key, secret = _key()
    sim.add_key(api_key, secret)
    sim.deposit("USDT", "100000")
    sim.deposit("BTC", "1")
    with bybit_sim(sim) as url:
        yield Venue(sim, url, api_key, secret)


# -- markets, balance, time ---------------------------------------------------------------


def test_load_markets_gives_spot_and_linear_with_precision_and_limits(venue: Venue) -> None:
    markets = venue.run(lambda ex: ex.load_markets())
    spot, perp = markets[SPOT], markets[PERP]
    assert spot["spot"]
    assert spot["id"] == "BTCUSDT"
    assert spot["precision"] == {"amount": 0.000001, "price": 0.01}
    assert spot["limits"]["amount"]["min"] == 0.000048
    assert spot["limits"]["cost"]["min"] == 1
    assert perp["swap"]
    assert perp["linear"]
    assert perp["settle"] == "USDT"
    assert perp["precision"] == {"amount": 0.001, "price": 0.1}
    assert perp["limits"]["amount"] == {"min": 0.001, "max": 1190}
    assert perp["limits"]["cost"]["min"] == 5
    assert perp["limits"]["leverage"]["max"] == 100
    # Public calls only: no currency list, no unified-account probe.
    assert {path for _, path in venue.sim.requests} == {"/v5/market/instruments-info"}


def test_fetch_time_and_balance(venue: Venue) -> None:
    async def body(ex: ccxt_async.Exchange) -> tuple[int, dict[str, Any]]:
        return await ex.fetch_time(), await ex.fetch_balance()

    server_ms, balance = venue.run(body)
    assert abs(server_ms - time.time() * 1000) < 5000
    assert balance["USDT"] == {"free": 100000, "used": 0, "total": 100000, "debt": 0}
    assert balance["BTC"]["total"] == 1
    assert balance["info"]["result"]["list"][0]["accountType"] == "UNIFIED"


def test_without_the_unified_option_ccxt_probes_query_api_and_account_info(venue: Venue) -> None:
    options = {"enableUnifiedAccount": None, "enableUnifiedMargin": None}
    balance = venue.run(lambda ex: ex.fetch_balance(), options=options)
    assert balance["USDT"]["total"] == 100000
    paths = [path for _, path in venue.sim.requests]
    assert "/v5/user/query-api" in paths
    assert "/v5/account/info" in paths


def test_kline_is_served_newest_first_and_ccxt_orders_it(venue: Venue) -> None:
    start = 1_700_000_000_000 // 60_000 * 60_000
    candles = [
        Candle(
            start + i * 60_000,
            Decimal(100 + i),
            Decimal(101 + i),
            Decimal(99 + i),
            Decimal("100.5") + i,
            Decimal("2.5"),
        )
        for i in range(5)
    ]
    venue.sim.set_candles("BTCUSDT", "1m", candles)
    rows = venue.run(lambda ex: ex.fetch_ohlcv(SPOT, "1m", since=start + 60_000, limit=3))
    assert rows == [
        [start + 60_000, 101, 102, 100, 101.5, 2.5],
        [start + 120_000, 102, 103, 101, 102.5, 2.5],
        [start + 180_000, 103, 104, 102, 103.5, 2.5],
    ]
    raw = venue.run(
        lambda ex: ex.public_get_v5_market_kline(
            {"category": "linear", "symbol": "BTCUSDT", "interval": "1", "limit": 2}
        )
    )
    assert [r[0] for r in raw["result"]["list"]] == [str(start + 240_000), str(start + 180_000)]


# -- orders -------------------------------------------------------------------------------


def test_limit_order_lifecycle_with_client_order_id(venue: Venue) -> None:
    cid = "tg-" + secrets.token_hex(8)

    async def body(ex: ccxt_async.Exchange) -> dict[str, Any]:
        placed = await ex.create_order(SPOT, "limit", "buy", 0.01, 40000, {"clientOrderId": cid})
        by_id = await ex.fetch_order(placed["id"], SPOT, {"acknowledged": True})
        by_cid = await ex.fetch_order("", SPOT, {"acknowledged": True, "orderLinkId": cid})
        open_orders = await ex.fetch_open_orders(SPOT)
        balance = await ex.fetch_balance()
        canceled = await ex.cancel_order(placed["id"], SPOT)
        after = await ex.fetch_order(placed["id"], SPOT, {"acknowledged": True})
        still_open = await ex.fetch_open_orders(SPOT)
        with pytest.raises(ccxt_errors.OrderNotFound):
            await ex.cancel_order(placed["id"], SPOT)
        return locals()

    r = venue.run(body)
    assert r["placed"]["clientOrderId"] == cid
    assert r["placed"]["id"]
    assert venue.sim.order_requests[0].params["orderLinkId"] == cid
    for order in (r["by_id"], r["by_cid"]):
        assert order["id"] == r["placed"]["id"]
        assert order["clientOrderId"] == cid
        assert order["status"] == "open"
        assert order["type"] == "limit"
        assert order["side"] == "buy"
        assert order["price"] == 40000
        assert order["amount"] == 0.01
        assert order["filled"] == 0
    assert [o["id"] for o in r["open_orders"]] == [r["placed"]["id"]]
    # 400 USDT plus the taker fee the engine reserves is held for the order.
    assert r["balance"]["USDT"]["used"] == pytest.approx(400.4)
    assert r["canceled"]["id"] == r["placed"]["id"]
    assert r["after"]["status"] == "canceled"
    assert r["still_open"] == []


def test_market_order_fills_and_shows_in_my_trades_with_its_fee(venue: Venue) -> None:
    async def body(ex: ccxt_async.Exchange) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        order = await ex.create_order(SPOT, "market", "buy", 0.01, None, {"clientOrderId": "m1"})
        fetched = await ex.fetch_order(order["id"], SPOT, {"acknowledged": True})
        return fetched, await ex.fetch_my_trades(SPOT)

    order, trades = venue.run(body)
    assert order["status"] == "closed"
    assert order["filled"] == 0.01
    assert order["average"] == 50000
    assert order["fee"] == {"cost": 0.5, "currency": "USDT"}
    [trade] = trades
    assert trade["order"] == order["id"]
    assert trade["symbol"] == SPOT
    assert trade["price"] == 50000
    assert trade["amount"] == 0.01
    assert trade["cost"] == 500
    assert trade["takerOrMaker"] == "taker"
    assert trade["fee"] == {"cost": 0.5, "currency": "USDT", "rate": 0.001}
    assert venue.sim.order_requests[0].params["marketUnit"] == "baseCoin"


def test_spot_market_buy_by_cost_sends_quote_units(venue: Venue) -> None:
    async def body(ex: ccxt_async.Exchange) -> dict[str, Any]:
        order = await ex.create_market_buy_order_with_cost(SPOT, 1000)
        return await ex.fetch_order(order["id"], SPOT, {"acknowledged": True})

    order = venue.run(body)
    sent = venue.sim.order_requests[0].params
    # No marketUnit: Bybit takes a spot market buy's qty in the quote coin by default.
    assert "marketUnit" not in sent
    assert sent["qty"] == "1000"
    assert order["status"] == "closed"
    assert order["filled"] == 0.02
    assert order["cost"] == 1000


def test_a_partly_filled_order_shows_partial_fill(venue: Venue) -> None:
    placed = venue.run(lambda ex: ex.create_order(PERP, "limit", "sell", 0.01, 51000))
    venue.sim.engine.fill(int(placed["id"]), Decimal("0.004"))
    order = venue.run(lambda ex: ex.fetch_order(placed["id"], PERP, {"acknowledged": True}))
    assert order["status"] == "open"
    assert (order["filled"], order["remaining"]) == (0.004, 0.006)
    assert order["info"]["orderStatus"] == "PartiallyFilled"


def test_resting_order_fills_as_maker_when_the_price_crosses(venue: Venue) -> None:
    async def place(ex: ccxt_async.Exchange) -> dict[str, Any]:
        return await ex.create_order(PERP, "limit", "buy", 0.01, 49000)

    placed = venue.run(place)
    [fill] = venue.sim.set_price("BTCUSDT", "48900", category="linear")
    assert fill.maker
    assert fill.price == Decimal(49000)

    async def check(ex: ccxt_async.Exchange) -> tuple[Any, ...]:
        order = await ex.fetch_order(placed["id"], PERP, {"acknowledged": True})
        trades = await ex.fetch_my_trades(PERP)
        positions = await ex.fetch_positions([PERP])
        return order, trades, positions

    order, trades, positions = venue.run(check)
    assert order["status"] == "closed"
    assert order["filled"] == 0.01
    assert trades[0]["takerOrMaker"] == "maker"
    assert trades[0]["fee"]["currency"] == "USDT"
    [position] = positions
    assert position["side"] == "long"
    assert position["contracts"] == 0.01
    assert position["entryPrice"] == 49000


def test_reduce_only_travels_as_a_json_boolean_and_is_enforced(venue: Venue) -> None:
    async def body(ex: ccxt_async.Exchange) -> dict[str, Any]:
        with pytest.raises(ccxt_errors.InvalidOrder, match="110017"):
            await ex.create_order(PERP, "market", "sell", 0.01, None, {"reduceOnly": True})
        await ex.create_order(PERP, "market", "buy", 0.01)
        return await ex.create_order(PERP, "market", "sell", 0.01, None, {"reduceOnly": True})

    venue.run(body)
    assert venue.sim.order_requests[0].params["reduceOnly"] is True
    assert venue.sim.engine.position(100001, "linear:BTCUSDT").size == 0


def test_insufficient_balance_raises_insufficient_funds(venue: Venue) -> None:
    async def body(ex: ccxt_async.Exchange) -> None:
        with pytest.raises(ccxt_errors.InsufficientFunds, match="170131"):
            await ex.create_order(SPOT, "limit", "buy", 5, 40000)
        with pytest.raises(ccxt_errors.InsufficientFunds, match="110007"):
            await ex.create_order(PERP, "limit", "buy", 100, 49000)

    venue.run(body)
    assert venue.sim.orders() == []


def test_duplicate_client_order_id_and_filters_are_invalid_orders(venue: Venue) -> None:
    async def body(ex: ccxt_async.Exchange) -> None:
        await ex.create_order(PERP, "limit", "buy", 0.01, 40000, {"clientOrderId": "dup"})
        with pytest.raises(ccxt_errors.InvalidOrder, match="110072"):
            await ex.create_order(PERP, "limit", "buy", 0.01, 40000, {"clientOrderId": "dup"})
        with pytest.raises(ccxt_errors.InvalidOrder, match="170136"):
            await ex.create_order(SPOT, "limit", "buy", 0.00001, 40000)
        with pytest.raises(ccxt_errors.InvalidOrder, match="110094"):
            await ex.create_order(PERP, "limit", "buy", 0.001, 4000)

    venue.run(body)
    assert len(venue.sim.orders()) == 1
    assert len(venue.sim.order_requests) == 4


# -- authentication and permissions ---------------------------------------------------------


def test_wrong_secret_is_refused_so_signatures_are_checked(venue: Venue) -> None:
    with pytest.raises(ccxt_errors.AuthenticationError, match="10004"):
        venue.run(lambda ex: ex.fetch_balance(), secret=secrets.token_urlsafe(27))
    with pytest.raises(ccxt_errors.AuthenticationError, match="10003"):
        venue.run(lambda ex: ex.fetch_balance(), api_key=secrets.token_hex(9))


def test_a_tampered_body_fails_the_signature(venue: Venue) -> None:
    stamp = str(int(time.time() * 1000))
    body = json.dumps({"category": "spot", "symbol": "BTCUSDT", "side": "Buy"})
    origin = stamp + venue.api_key + "5000" + body
    sign = hmac.new(venue.secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(  # noqa: S310 (a loopback http URL)
        venue.url + "/v5/order/create",
        data=body.replace("Buy", "Sell").encode(),
        headers={
            "X-BAPI-API-KEY": venue.api_key,
            "X-BAPI-TIMESTAMP": stamp,
            "X-BAPI-RECV-WINDOW": "5000",
            "X-BAPI-SIGN": sign,
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
        answer = json.load(reply)
    assert answer["retCode"] == 10004
    assert answer["retMsg"].startswith("error sign!")
    assert answer["result"] == {}
    assert isinstance(answer["time"], int)


def test_stale_timestamp_is_refused_as_invalid_nonce(venue: Venue) -> None:
    # ccxt stamps requests with its clock minus timeDifference: a minute behind the server.
    with pytest.raises(ccxt_errors.InvalidNonce, match="10002"):
        venue.run(lambda ex: ex.fetch_balance(), options={"timeDifference": 60_000})


def test_read_only_key_cannot_place_an_order_until_its_permissions_widen(venue: Venue) -> None:
    api_key, secret = _key()
    venue.sim.add_key(api_key, secret, read_only=True)

    async def place(ex: ccxt_async.Exchange) -> dict[str, Any]:
        return await ex.create_order(SPOT, "limit", "buy", 0.01, 40000)

    with pytest.raises(ccxt_errors.PermissionDenied, match="10005"):
        venue.run(place, api_key=api_key, secret=secret)
    assert venue.run(lambda ex: ex.fetch_balance(), api_key=api_key, secret=secret)["BTC"]
    venue.sim.set_key_permissions(api_key, read_only=False)
    assert venue.run(place, api_key=api_key, secret=secret)["id"]


def test_a_key_without_contract_trading_cannot_trade_perps(venue: Venue) -> None:
    api_key, secret = _key()
    venue.sim.add_key(api_key, secret, permissions={"Spot": ["SpotTrade"]})

    async def body(ex: ccxt_async.Exchange) -> None:
        await ex.create_order(SPOT, "limit", "buy", 0.01, 40000)
        with pytest.raises(ccxt_errors.PermissionDenied):
            await ex.create_order(PERP, "limit", "buy", 0.01, 40000)

    venue.run(body, api_key=api_key, secret=secret)


def test_query_api_returns_the_configured_permissions(venue: Venue) -> None:
    api_key, secret = _key()
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    perms = {
        "ContractTrade": ["Order", "Position"],
        "Spot": ["SpotTrade"],
        "Wallet": ["AccountTransfer", "SubMemberTransfer", "SubMemberTransferList", "Withdraw"],
    }
    venue.sim.add_key(api_key, secret, permissions=perms, ips=["127.0.0.1"], expired_at=expires)
    info = venue.run(lambda ex: ex.private_get_v5_user_query_api(), api_key=api_key, secret=secret)[
        "result"
    ]
    assert info["apiKey"] == api_key
    assert info["secret"] == ""
    assert info["readOnly"] == 0
    assert info["permissions"]["Wallet"] == perms["Wallet"]
    assert info["permissions"]["ContractTrade"] == ["Order", "Position"]
    assert info["permissions"]["NFT"] == []
    assert info["ips"] == ["127.0.0.1"]
    assert info["expiredAt"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["deadlineDay"] in (29, 30)
    assert info["uta"] == 1

    default = venue.run(lambda ex: ex.private_get_v5_user_query_api())["result"]
    assert default["permissions"]["Wallet"] == []
    assert default["ips"] == ["*"]
    assert default["permissions"]["Spot"] == ["SpotTrade"]

    venue.sim.set_key_permissions(venue.api_key, {"Wallet": ["Withdraw"]})
    widened = venue.run(lambda ex: ex.private_get_v5_user_query_api())["result"]
    assert widened["permissions"]["Wallet"] == ["Withdraw"]


def test_ip_bound_and_expired_keys_are_refused(venue: Venue) -> None:
    api_key, secret = _key()
    venue.sim.add_key(api_key, secret, ips=["203.0.113.7"])
    with pytest.raises(ccxt_errors.PermissionDenied, match="10010"):
        venue.run(lambda ex: ex.fetch_balance(), api_key=api_key, secret=secret)
    venue.sim.set_key_permissions(
        api_key, ips=["*"], expired_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    with pytest.raises(ccxt_errors.AuthenticationError, match="33004"):
        venue.run(lambda ex: ex.fetch_balance(), api_key=api_key, secret=secret)


# -- faults ---------------------------------------------------------------------------------


def test_rate_limits_raise_rate_limit_exceeded(venue: Venue) -> None:
    venue.sim.rate_limit_next(1, path="/v5/account/wallet-balance")
    with pytest.raises(ccxt_errors.RateLimitExceeded, match="10006"):
        venue.run(lambda ex: ex.fetch_balance())
    venue.sim.rate_limit_next(1, http_403=True)
    with pytest.raises(ccxt_errors.RateLimitExceeded, match="403"):
        venue.run(lambda ex: ex.fetch_balance())
    assert venue.run(lambda ex: ex.fetch_balance())["USDT"]["total"] == 100000


def test_rate_limited_reply_carries_the_limit_headers(venue: Venue) -> None:
    venue.sim.rate_limit_next(1)
    with urllib.request.urlopen(venue.url + "/v5/market/time", timeout=5) as reply:  # noqa: S310
        answer = json.load(reply)
        assert reply.headers["X-Bapi-Limit-Status"] == "0"
        assert int(reply.headers["X-Bapi-Limit-Reset-Timestamp"]) > 0
    assert answer["retCode"] == 10006
    assert answer["retMsg"] == "Too many visits!"


def test_http_failure_and_malformed_replies(venue: Venue) -> None:
    venue.sim.fail_next(1, status=503, path="/v5/account/wallet-balance")
    with pytest.raises(ccxt_errors.ExchangeNotAvailable):
        venue.run(lambda ex: ex.fetch_balance())
    venue.sim.fail_next(1, status=502)
    with pytest.raises(urllib.error.HTTPError, match="502"):
        urllib.request.urlopen(venue.url + "/v5/market/time", timeout=5)  # noqa: S310
    venue.sim.malformed_next(1, path="/v5/order/create", processed=True)

    async def place(ex: ccxt_async.Exchange) -> dict[str, Any]:
        await ex.load_markets()
        return await ex.create_order(SPOT, "limit", "buy", 0.01, 40000, {"clientOrderId": "cut"})

    # ccxt swallows a truncated order reply: an order with no id, though the venue booked it.
    order = venue.run(place)
    assert order["id"] is None
    assert [o.client_order_id for o in venue.sim.orders()] == ["cut"]


def test_a_lost_reply_times_out_and_the_order_is_in_the_book(venue: Venue) -> None:
    venue.sim.drop_reply_after_accept(1)
    cid = "lost-" + secrets.token_hex(4)

    async def body(ex: ccxt_async.Exchange) -> list[dict[str, Any]]:
        await ex.load_markets()
        with pytest.raises(ccxt_errors.RequestTimeout):
            await ex.create_order(SPOT, "limit", "buy", 0.01, 40000, {"clientOrderId": cid})
        return await ex.fetch_open_orders(SPOT, None, None, {"orderLinkId": cid})

    started = time.monotonic()
    [found] = venue.run(body, timeout=500)
    assert time.monotonic() - started < 5
    assert found["clientOrderId"] == cid
    assert found["status"] == "open"
    assert len(venue.sim.order_requests) == 1
