"""The real ccxt Binance clients (`binance` spot, `binanceusdm`) against the loopback simulator
(tests/sims/binance.py).

Each test runs its ccxt calls in `asyncio.run`, against a fresh simulator, with keys made at run
time. The failures asserted here are the ccxt exception classes a production venue sees, which
is the point: the simulator answers with Binance's codes and ccxt maps them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import pytest
from tests.sims.binance import BinanceSim, binance_sim

from tradeguard.marketdata.candles import Candle
from tradeguard.marketdata.exchanges import ccxt_exchange

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
ACCOUNT = "alice"
# What a caller passes so that load_markets makes one public call per venue and no signed one.
LEAN: dict[str, Any] = {
    "enableRateLimit": False,  # the sim needs no pacing; keeps the file fast
    "timeout_on_exit": 0,  # ccxt sleeps this long in close() (250 ms by default)
    "options": {"fetchCurrencies": False, "fetchMargins": False, "fetchMarkets": {"types": []}},
}


@dataclass
class Venue:
    sim: BinanceSim
    url: str
    key: str
    secret: str

    @asynccontextmanager
    async def client(
        self,
        venue: str = "binance",
        *,
        key: str | None = None,
        secret: str | None = None,
        load: bool = True,
        **config: Any,
    ) -> AsyncIterator[ccxt_async.Exchange]:
        types = ["spot"] if venue == "binance" else ["linear"]
        options = {**LEAN["options"], "fetchMarkets": {"types": types}, **config.pop("options", {})}
        exchange = ccxt_exchange(
            venue,
            api_url=self.url,
            config={
                **LEAN,
                "apiKey": key or self.key,
                "secret": secret or self.secret,
                "options": options,
                **config,
            },
        )
        try:
            if load:
                await exchange.load_markets()
            yield exchange
        finally:
            await exchange.close()


@pytest.fixture
def venue() -> Iterator[Venue]:
    sim = BinanceSim()
    key, secret = secrets.token_hex(32), secrets.token_hex(32)
    sim.add_key(key, secret, account=ACCOUNT, futures=True)
    sim.deposit(ACCOUNT, "USDT", Decimal(10_000))
    sim.deposit(ACCOUNT, "BTC", Decimal(1))
    sim.deposit(ACCOUNT, "USDT", Decimal(5_000), futures=True)
    with binance_sim(sim) as url:
        yield Venue(sim, url, key, secret)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def cid() -> str:
    return "tg-" + secrets.token_hex(8)


# -- markets and balances -------------------------------------------------------------------


def test_load_markets_spot_and_usdm_have_binance_precision_and_limits(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as spot:
            m = spot.market(SPOT)
            assert m["spot"]
            assert m["active"]
            assert m["id"] == "BTCUSDT"
            assert m["precision"]["price"] == 0.01
            assert m["precision"]["amount"] == 0.00001
            assert m["limits"]["amount"]["min"] == 0.00001
            assert m["limits"]["cost"]["min"] == 5
            assert PERP not in spot.markets
        async with venue.client("binanceusdm") as usdm:
            m = usdm.market(PERP)
            assert m["swap"]
            assert m["linear"]
            assert m["settle"] == "USDT"
            assert m["precision"]["price"] == 0.1
            assert m["precision"]["amount"] == 0.001
            assert m["limits"]["cost"]["min"] == 100

    run(scenario())
    # LEAN options: one public call per client, nothing signed during load_markets.
    assert venue.sim.requests == [("GET", "/api/v3/exchangeInfo"), ("GET", "/fapi/v1/exchangeInfo")]


def test_default_options_load_markets_too(venue: Venue) -> None:
    """Without the LEAN options ccxt also fetches currencies and margin pairs (signed)."""

    async def scenario() -> None:
        exchange = ccxt_exchange(
            "binance", api_url=venue.url, config={"apiKey": venue.key, "secret": venue.secret}
        )
        try:
            await exchange.load_markets()
            assert SPOT in exchange.markets
            assert PERP in exchange.markets
            assert exchange.currencies["BTC"]["id"] == "BTC"
        finally:
            await exchange.close()

    run(scenario())
    assert ("GET", "/sapi/v1/capital/config/getall") in venue.sim.requests


def test_fetch_balance_spot_and_futures(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as spot:
            balance = await spot.fetch_balance()
            assert balance["USDT"]["free"] == 10_000
            assert balance["BTC"]["total"] == 1
        async with venue.client("binanceusdm") as usdm:
            balance = await usdm.fetch_balance()
            assert balance["USDT"]["free"] == 5_000
            assert balance["USDT"]["used"] == 0

    run(scenario())


# -- orders ---------------------------------------------------------------------------------


def test_limit_order_lifecycle_by_id_and_client_id(venue: Venue) -> None:
    client_id = cid()

    async def scenario() -> None:
        async with venue.client() as ex:
            order = await ex.create_order(
                SPOT, "limit", "buy", 0.01, 29_000, {"clientOrderId": client_id}
            )
            assert order["status"] == "open"
            assert order["clientOrderId"] == client_id
            by_id = await ex.fetch_order(order["id"], SPOT)
            by_client = await ex.fetch_order(None, SPOT, {"origClientOrderId": client_id})
            assert by_id["id"] == by_client["id"] == order["id"]
            assert by_client["price"] == 29_000
            assert by_client["remaining"] == 0.01
            assert [o["id"] for o in await ex.fetch_open_orders(SPOT)] == [order["id"]]
            balance = await ex.fetch_balance()
            assert balance["USDT"]["used"] == pytest.approx(290 * 1.001)
            canceled = await ex.cancel_order(order["id"], SPOT)
            assert canceled["status"] == "canceled"
            assert await ex.fetch_open_orders(SPOT) == []
            with pytest.raises(ccxt_async.OrderNotFound):
                await ex.cancel_order(order["id"], SPOT)
            with pytest.raises(ccxt_async.OrderNotFound):
                await ex.fetch_order("999999", SPOT)

    run(scenario())
    assert len(venue.sim.orders_with_client_id(client_id)) == 1


def test_resting_limit_fills_as_maker_when_the_price_crosses(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as ex:
            order = await ex.create_order(SPOT, "limit", "sell", 0.1, 31_000)
            venue.sim.set_price("BTCUSDT", Decimal(31_500))
            filled = await ex.fetch_order(order["id"], SPOT)
            assert filled["status"] == "closed"
            assert filled["average"] == 31_000
            (trade,) = await ex.fetch_my_trades(SPOT)
            assert trade["takerOrMaker"] == "maker"
            assert trade["fee"] == {"currency": "USDT", "cost": pytest.approx(3.1)}

    run(scenario())


def test_market_order_fills_and_shows_in_my_trades_with_the_fee(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as ex:
            order = await ex.create_order(
                SPOT, "market", "buy", 0.01, None, {"clientOrderId": cid()}
            )
            assert order["status"] == "closed"
            assert order["filled"] == 0.01
            assert order["average"] == 30_000
            trades = await ex.fetch_my_trades(SPOT)
            assert len(trades) == 1
            assert trades[0]["order"] == order["id"]
            assert trades[0]["takerOrMaker"] == "taker"
            assert trades[0]["fee"] == {"currency": "USDT", "cost": pytest.approx(0.3)}
            balance = await ex.fetch_balance()
            assert balance["USDT"]["free"] == pytest.approx(10_000 - 300.3)
            assert balance["BTC"]["free"] == pytest.approx(1.01)

    run(scenario())


def test_partial_fill_and_stop_loss(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as ex:
            order = await ex.create_order(SPOT, "limit", "buy", 0.02, 29_000)
            venue.sim.spot.fill(int(order["id"]), Decimal("0.005"))
            partial = await ex.fetch_order(order["id"], SPOT)
            assert partial["status"] == "open"
            assert partial["info"]["status"] == "PARTIALLY_FILLED"
            assert partial["filled"] == 0.005
            stop = await ex.create_order(
                SPOT, "STOP_LOSS", "sell", 0.5, None, {"stopPrice": 29_500}
            )
            assert stop["status"] == "open"
            venue.sim.set_price("BTCUSDT", Decimal(29_400))
            triggered = await ex.fetch_order(stop["id"], SPOT)
            assert triggered["status"] == "closed"
            assert triggered["average"] == 29_400

    run(scenario())


def test_insufficient_balance_is_insufficient_funds(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as ex:
            with pytest.raises(ccxt_async.InsufficientFunds, match="insufficient balance"):
                await ex.create_order(SPOT, "limit", "buy", 1, 29_000)
            assert await ex.fetch_open_orders(SPOT) == []

    run(scenario())


def test_order_refusals_map_to_invalid_order(venue: Venue) -> None:
    client_id = cid()

    async def scenario() -> None:
        async with venue.client() as ex:
            await ex.create_order(SPOT, "limit", "buy", 0.01, 29_000, {"clientOrderId": client_id})
            with pytest.raises(ccxt_async.InvalidOrder, match="Duplicate order sent"):
                await ex.create_order(
                    SPOT, "limit", "buy", 0.01, 29_000, {"clientOrderId": client_id}
                )
            # Sent raw, past ccxt's own rounding: a price off the tick, a quantity off the step.
            base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
            with pytest.raises(ccxt_async.InvalidOrder, match="PRICE_FILTER"):
                await ex.private_post_order({**base, "quantity": "0.01", "price": "29000.005"})
            with pytest.raises(ccxt_async.InvalidOrder, match="LOT_SIZE"):
                await ex.private_post_order({**base, "quantity": "0.000015", "price": "29000"})
            # NOTIONAL (-1013) is not in ccxt's loopback mapping: it arrives as BadRequest.
            with pytest.raises(ccxt_async.BadRequest, match="NOTIONAL"):
                await ex.create_order(SPOT, "limit", "buy", 0.0001, 29_000)

    run(scenario())


# -- authentication -------------------------------------------------------------------------


def test_a_wrong_secret_fails_the_signature_check(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client(secret=secrets.token_hex(32)) as ex:
            with pytest.raises(ccxt_async.AuthenticationError, match="-1022"):
                await ex.fetch_balance()
            with pytest.raises(ccxt_async.AuthenticationError):
                await ex.create_order(SPOT, "market", "buy", 0.01)

    run(scenario())
    assert venue.sim.spot.orders(ACCOUNT) == []


def test_an_unknown_key_is_refused(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client(key=secrets.token_hex(32)) as ex:
            with pytest.raises(ccxt_async.AuthenticationError, match="-2015"):
                await ex.fetch_balance()

    run(scenario())


def test_a_key_removed_mid_session_is_reported_as_ddos_protection(venue: Venue) -> None:
    """ccxt quirk: once a spot private call has succeeded, it reports -2015 as DDoSProtection
    (it reads the code as a temporary ban), not AuthenticationError."""

    async def scenario() -> None:
        async with venue.client() as ex:
            await ex.fetch_balance()
            venue.sim.remove_key(venue.key)
            with pytest.raises(ccxt_async.DDoSProtection, match="-2015"):
                await ex.fetch_balance()

    run(scenario())


@pytest.mark.parametrize("skew_ms", [12_000, -3_000])
def test_a_timestamp_outside_the_window_is_invalid_nonce(venue: Venue, skew_ms: int) -> None:
    """ccxt sends recvWindow=10000 by default; 12 s late or 3 s early is refused (-1021)."""
    venue.sim.skew_ms = skew_ms

    async def scenario() -> None:
        async with venue.client() as ex:
            with pytest.raises(ccxt_async.InvalidNonce):
                await ex.fetch_balance()

    run(scenario())


def raw(
    url: str, method: str = "GET", body: str = "", headers: dict[str, str] | None = None
) -> Any:
    """One raw request to the simulator: (status, decoded JSON)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=5)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body or None, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def test_signature_covers_query_and_body_as_binance_defines(venue: Venue) -> None:
    """A hand-signed POST whose parameters are split between query string and body."""
    now = venue.sim.now_ms()
    query = f"symbol=BTCUSDT&side=BUY&type=LIMIT&timestamp={now}"
    body = "quantity=0.01&price=29000&timeInForce=GTC"
    signature = hmac.new(venue.secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    url = f"{venue.url}/api/v3/order?{query}&signature={signature}"
    headers = {"X-MBX-APIKEY": venue.key, "Content-Type": "application/x-www-form-urlencoded"}
    status, reply = raw(url, "POST", body, headers)
    assert (status, reply["status"]) == (200, "NEW")
    status, reply = raw(url.replace("BUY", "SELL"), "POST", body, headers)
    assert (status, reply["code"]) == (400, -1022)
    status, reply = raw(url, "POST", body.replace("0.01", "0.02"), headers)
    assert (status, reply["code"]) == (400, -1022)
    assert len(venue.sim.spot.orders(ACCOUNT)) == 1


def test_futures_need_the_futures_permission_which_can_be_granted_later(venue: Venue) -> None:
    key, secret = secrets.token_hex(32), secrets.token_hex(32)
    venue.sim.add_key(key, secret, account=ACCOUNT, futures=False)

    async def scenario() -> None:
        async with venue.client("binanceusdm", key=key, secret=secret) as ex:
            with pytest.raises(ccxt_async.AuthenticationError, match="-2015"):
                await ex.create_order(PERP, "market", "buy", 0.01)
            assert venue.sim.futures.orders(ACCOUNT) == []
            venue.sim.set_key_permissions(key, futures=True)
            order = await ex.create_order(PERP, "market", "buy", 0.01)
            assert order["status"] == "closed"

    run(scenario())


def test_api_restrictions_report_the_key_permissions(venue: Venue) -> None:
    key, secret = secrets.token_hex(32), secrets.token_hex(32)
    venue.sim.add_key(key, secret, account="bob", spot=True, ip_restrict=True)

    async def scenario() -> dict[str, Any]:
        async with venue.client(key=key, secret=secret, load=False) as ex:
            before = await ex.sapi_get_account_apirestrictions()
            assert before["enableSpotAndMarginTrading"] is True
            assert before["enableWithdrawals"] is False
            assert before["enableFutures"] is False
            assert before["ipRestrict"] is True
            assert before["enableReading"] is True
            assert "tradingAuthorityExpirationTime" not in before
            venue.sim.set_key_permissions(
                key, withdrawals=True, trading_authority_expiration_ms=1_900_000_000_000
            )
            after: dict[str, Any] = await ex.sapi_get_account_apirestrictions()
            return after

    after = run(scenario())
    assert after["enableWithdrawals"] is True
    assert after["tradingAuthorityExpirationTime"] == 1_900_000_000_000
    assert set(after) >= {
        "createTime",
        "enableInternalTransfer",
        "enableMargin",
        "permitsUniversalTransfer",
        "enableVanillaOptions",
        "enablePortfolioMarginTrading",
    }


# -- faults ---------------------------------------------------------------------------------


def test_429_with_retry_after_is_ddos_protection(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as ex:
            venue.sim.rate_limit_next(1, status=429, retry_after=7)
            with pytest.raises(ccxt_async.DDoSProtection, match="-1003"):
                await ex.fetch_balance()
            assert ex.last_response_headers["Retry-After"] == "7"
            venue.sim.rate_limit_next(1, status=418, retry_after=60)
            with pytest.raises(ccxt_async.DDoSProtection, match="banned"):
                await ex.fetch_balance()
            assert (await ex.fetch_balance())["USDT"]["free"] == 10_000

    run(scenario())


def test_503_and_malformed_replies(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as ex:
            venue.sim.fail_next(1)
            with pytest.raises(ccxt_async.ExchangeNotAvailable):
                await ex.fetch_balance()
            # ccxt does not raise on a 200 whose body is not JSON: it parses the text into an
            # order without id or status. A venue class must treat that as an unknown outcome.
            venue.sim.malformed_next(1)
            order = await ex.create_order(SPOT, "limit", "buy", 0.01, 29_000)
            assert order["id"] is None
            assert order["status"] is None
            assert len(venue.sim.spot.orders(ACCOUNT)) == 0  # the fault answered instead

    run(scenario())


def test_a_lost_reply_is_a_timeout_while_the_order_exists(venue: Venue) -> None:
    client_id = cid()

    async def scenario() -> None:
        async with venue.client(timeout=400) as ex:
            venue.sim.drop_reply_after_accept()
            with pytest.raises(ccxt_async.RequestTimeout):
                await ex.create_order(
                    SPOT, "limit", "buy", 0.01, 29_000, {"clientOrderId": client_id}
                )
            # Reconcile by client order id instead of sending again.
            found = await ex.fetch_order(None, SPOT, {"origClientOrderId": client_id})
            assert found["status"] == "open"

    run(scenario())
    assert len(venue.sim.orders_with_client_id(client_id)) == 1
    assert len(venue.sim.spot.orders(ACCOUNT)) == 1


# -- futures --------------------------------------------------------------------------------


def test_perp_position_reduce_only_and_user_trades(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client("binanceusdm") as ex:
            with pytest.raises(ccxt_async.ExchangeError, match="-2022"):
                await ex.create_order(PERP, "market", "sell", 0.01, None, {"reduceOnly": True})
            await ex.create_order(PERP, "market", "buy", 0.1, None, {"clientOrderId": cid()})
            (position,) = await ex.fetch_positions([PERP])
            assert position["side"] == "long"
            assert position["contracts"] == 0.1
            assert position["entryPrice"] == 30_000
            venue.sim.set_price("BTCUSDT", Decimal(31_000))
            await ex.create_order(PERP, "market", "sell", 0.1, None, {"reduceOnly": True})
            assert await ex.fetch_positions([PERP]) == []
            trades = await ex.fetch_my_trades(PERP)
            assert [t["side"] for t in trades] == ["buy", "sell"]
            assert trades[1]["info"]["realizedPnl"] == "100"
            balance = await ex.fetch_balance()
            # 5000 + 100 profit - taker fees 0.05% of 3000 and of 3100
            assert balance["USDT"]["total"] == pytest.approx(5_000 + 100 - 1.5 - 1.55)

    run(scenario())


def test_perp_insufficient_margin_is_minus_2019(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client("binanceusdm") as ex:
            # -2019 maps to InsufficientFunds only for ccxt's fapi.binance.com URLs.
            with pytest.raises(ccxt_async.ExchangeError, match="-2019"):
                await ex.create_order(PERP, "limit", "buy", 2, 29_000)

    run(scenario())


# -- klines ---------------------------------------------------------------------------------


def _candles(start_ms: int, count: int, step_ms: int = 60_000) -> list[Candle]:
    out = []
    for i in range(count):
        price = Decimal(30_000 + i)
        out.append(
            Candle(start_ms + i * step_ms, price, price + 5, price - 5, price + 1, Decimal("1.5"))
        )
    return out


def test_klines_paging_and_wire_format(venue: Venue) -> None:
    start = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    candles = _candles(start, 1_200)
    venue.sim.set_candles("BTCUSDT", "1m", candles)

    async def scenario() -> None:
        async with venue.client() as ex:
            first = await ex.fetch_ohlcv(SPOT, "1m", since=start, limit=1000)
            assert len(first) == 1000
            assert first[0][0] == start
            rest = await ex.fetch_ohlcv(SPOT, "1m", since=first[-1][0] + 60_000, limit=1000)
            assert len(rest) == 200
            assert rest[-1][0] == candles[-1].ts_ms
            assert first[0][1:] == [30_000.0, 30_005.0, 29_995.0, 30_001.0, 1.5]
            latest = await ex.fetch_ohlcv(SPOT, "1m", limit=3)
            assert [c[0] for c in latest] == [c.ts_ms for c in candles[-3:]]

    run(scenario())

    def get(query: str) -> Any:
        status, reply = raw(f"{venue.url}/api/v3/klines?{query}")
        assert status == 200, reply
        return reply

    row = get(f"symbol=BTCUSDT&interval=1m&startTime={start}&limit=1")[0]
    assert row == [
        start,
        "30000.00000000",
        "30005.00000000",
        "29995.00000000",
        "30001.00000000",
        "1.50000000",
        start + 59_999,
        "45001.50000000",
        1,
        "0.00000000",
        "0.00000000",
        "0",
    ]
    assert len(get("symbol=BTCUSDT&interval=1m")) == 500
    window = get(f"symbol=BTCUSDT&interval=1m&startTime={start}&endTime={start + 120_000}")
    assert [r[0] for r in window] == [start, start + 60_000, start + 120_000]
    status, reply = raw(f"{venue.url}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1001")
    assert (status, reply["code"]) == (400, -1130)
