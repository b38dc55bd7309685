"""tradeguard's Binance venues (spot and USDⓈ-M, CcxtVenue + ccxt) against the loopback
simulator: orders, typed errors and retries, and a lost reply recovered by client id."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal

import pytest
from tests.sims.binance import BinanceSim, binance_sim

from tradeguard.core.errors import (
    InsufficientFunds,
    InvalidOrder,
    RateLimited,
    VenueAuthFailed,
)
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.secrets import Secret
from tradeguard.vault.schemas import schema_for
from tradeguard.venues import OrderRequest, OrderStatus, OrderType, Side, new_client_order_id
from tradeguard.venues.ccxt_venue import CcxtVenue, RetryPolicy
from tradeguard.venues.specs import spec_for

D = Decimal
FAST = RetryPolicy(backoff=0.01, lookup_delay=0.05)


def binance_fields(api_key: str, secret: str) -> dict[str, Secret]:
    values = {"api_key": api_key, "api_secret": secret}
    return {spec.name: spec.parse(values[spec.name]) for spec in schema_for("binance").fields}


@dataclass
class Setup:
    sim: BinanceSim
    url: str
    api_key: str
    secret: str

    def venue(
        self, name: str = "binance", *, secret: str | None = None, timeout_ms: int = 5_000
    ) -> CcxtVenue:
        fields = binance_fields(self.api_key, secret or self.secret)
        return CcxtVenue(
            spec_for(name),
            lambda: nullcontext(fields),
            api_url=self.url,
            timeout_ms=timeout_ms,
            rate_limit=False,
            retry=FAST,
        )


@pytest.fixture
def bn() -> Iterator[Setup]:
    sim = BinanceSim()
    api_key, secret = secrets.token_hex(16), secrets.token_hex(32)
    sim.add_key(api_key, secret, spot=True, futures=True, ip_restrict=True)
    sim.deposit("main", "USDT", Decimal(10_000))
    sim.deposit("main", "USDT", Decimal(10_000), futures=True)
    with binance_sim(sim) as url:
        yield Setup(sim, url, api_key, secret)


def booked(sim: BinanceSim, client_order_id: str) -> int:
    return sum(o.client_order_id == client_order_id for o in sim.spot.orders("main"))


def order(
    symbol: str, side: Side, kind: OrderType, amount: str, price: str | None = None
) -> OrderRequest:
    return OrderRequest(
        new_client_order_id(), symbol, side, kind, Decimal(amount),
        None if price is None else Decimal(price),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("venue_name", "symbol"), [("binance", "BTC/USDT"), ("binanceusdm", "BTC/USDT:USDT")]
)
def test_an_order_lifecycle_on_spot_and_futures(bn: Setup, venue_name: str, symbol: str) -> None:
    async def scenario() -> None:
        venue = bn.venue(venue_name)
        try:
            markets = await venue.load_markets()
            assert set(markets) == {symbol, symbol.replace("BTC", "ETH")}
            request = order(symbol, Side.BUY, OrderType.LIMIT, "0.01", "29000")
            placed = await venue.create_order(request)
            assert (placed.status, placed.client_order_id) == (
                OrderStatus.OPEN,
                request.client_order_id,
            )
            fetched = await venue.fetch_order(symbol, client_order_id=request.client_order_id)
            assert fetched.venue_order_id == placed.venue_order_id
            assert [o.client_order_id for o in await venue.fetch_open_orders(symbol)] == [
                request.client_order_id
            ]
            assert [o.client_order_id for o in await venue.fetch_open_orders()] == [
                request.client_order_id
            ]
            canceled = await venue.cancel_order(symbol, venue_order_id=placed.venue_order_id)
            assert canceled.status is OrderStatus.CANCELED
            filled = await venue.create_order(order(symbol, Side.BUY, OrderType.MARKET, "0.01"))
            assert (filled.status, filled.filled) == (OrderStatus.FILLED, Decimal("0.01"))
            [trade] = await venue.fetch_my_trades(symbol)
            assert (trade.price, trade.amount, trade.venue_order_id) == (
                Decimal(30_000), Decimal("0.01"), filled.venue_order_id,
            )  # fmt: skip
            assert trade.fee > 0
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_spot_balance_and_insufficient_funds(bn: Setup) -> None:
    async def scenario() -> None:
        venue = bn.venue()
        try:
            balance = await venue.fetch_balance()
            assert balance.free("USDT") == Decimal(10_000)
            with pytest.raises(InsufficientFunds, match="insufficient balance"):
                await venue.create_order(order("BTC/USDT", Side.BUY, OrderType.LIMIT, "1", "29000"))
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_off_tick_and_too_small_orders_never_reach_the_venue(bn: Setup) -> None:
    async def scenario() -> None:
        venue = bn.venue()
        try:
            market = (await venue.load_markets())["BTC/USDT"]
            with pytest.raises(InvalidOrder, match=f"tick {market.price_tick}"):
                await venue.create_order(
                    order("BTC/USDT", Side.BUY, OrderType.LIMIT, "0.01", "29000.001")
                )
            with pytest.raises(InvalidOrder, match="below the minimum"):
                await venue.create_order(
                    order("BTC/USDT", Side.BUY, OrderType.LIMIT, "0.00001", "29000")
                )
        finally:
            await venue.close()
        assert bn.sim.order_requests == []

    asyncio.run(scenario())


def test_a_lost_reply_is_found_by_client_id_and_never_sent_twice(bn: Setup) -> None:
    async def scenario() -> None:
        venue = bn.venue(timeout_ms=700)
        try:
            await venue.load_markets()
            bn.sim.drop_reply_after_accept(1)
            request = order("BTC/USDT", Side.BUY, OrderType.LIMIT, "0.01", "29000")
            placed = await venue.create_order(request)
            assert placed.client_order_id == request.client_order_id
        finally:
            bn.sim.release_held_replies()
            await venue.close()
        assert len(bn.sim.order_requests) == 1
        assert booked(bn.sim, request.client_order_id) == 1

    asyncio.run(scenario())


def test_a_garbled_reply_to_an_order_is_not_taken_as_a_rejection(bn: Setup) -> None:
    """The simulator answers garbage without booking: two lookups agree the order is not
    there, so it is sent once more under the same client id; one order exists in the end."""

    async def scenario() -> None:
        venue = bn.venue()
        try:
            await venue.load_markets()
            bn.sim.malformed_next(1)
            request = order("BTC/USDT", Side.BUY, OrderType.LIMIT, "0.01", "29000")
            placed = await venue.create_order(request)
            assert placed.status is OrderStatus.OPEN
        finally:
            await venue.close()
        assert len(bn.sim.orders_with_client_id(request.client_order_id)) == 2  # sent twice...
        assert booked(bn.sim, request.client_order_id) == 1  # ...because the first never booked

    asyncio.run(scenario())


def test_rate_limits_carry_retry_after_and_reads_retry_transient_failures(bn: Setup) -> None:
    async def scenario() -> None:
        venue = bn.venue()
        try:
            await venue.load_markets()
            bn.sim.rate_limit_next(1, status=429, retry_after=1)
            with pytest.raises(RateLimited) as caught:
                await venue.create_order(
                    order("BTC/USDT", Side.BUY, OrderType.LIMIT, "0.01", "29000")
                )
            assert caught.value.retry_after == 1
            bn.sim.fail_next(1, status=503)
            assert (await venue.fetch_balance()).free("USDT") == Decimal(10_000)  # retried
            bn.sim.rate_limit_next(1, status=418, retry_after=120)  # a ban: not waited out
            with pytest.raises(RateLimited):
                await venue.fetch_balance()
        finally:
            await venue.close()
        assert bn.sim.order_requests[0].params.get("newClientOrderId")  # sent once, refused

    asyncio.run(scenario())


def test_a_wrong_secret_is_refused_by_the_venue(bn: Setup) -> None:
    async def scenario() -> None:
        venue = bn.venue(secret=secrets.token_hex(32))
        try:
            with pytest.raises(VenueAuthFailed, match="Signature for this request is not valid"):
                await venue.fetch_balance()
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_candles_come_back_exact_from_the_public_endpoint(bn: Setup) -> None:
    candles = [
        Candle(1_700_000_000_000 + i * 300_000, D("29000.10"), D("29010.5"), D("28990"),
               D("29005.01"), D("1.2345"))
        for i in range(3)
    ]  # fmt: skip
    bn.sim.set_candles("BTCUSDT", "5m", candles)

    async def scenario() -> list[Candle]:
        venue = bn.venue()
        try:
            return await venue.fetch_ohlcv("BTC/USDT", Timeframe.parse("5m"), limit=10)
        finally:
            await venue.close()

    got = asyncio.run(scenario())
    assert [(c.ts_ms, c.open, c.close, c.volume) for c in got] == [
        (c.ts_ms, c.open, c.close, c.volume) for c in candles
    ]
