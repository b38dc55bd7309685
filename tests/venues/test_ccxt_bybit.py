"""tradeguard's Bybit venue (CcxtVenue + ccxt) against the loopback V5 simulator, spot and
linear: markets, balances, orders and fills, checks before sending, lost and truncated replies
recovered by client id without a second order, typed errors, and key vetting."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal

import pytest
from tests.sims.bybit import BybitSim, bybit_sim

from tradeguard.core.errors import (
    InsufficientFunds,
    InvalidOrder,
    KeyPermissionRefused,
    RateLimited,
    VenueAuthFailed,
    VenueRejected,
)
from tradeguard.secrets import Secret
from tradeguard.vault.schemas import schema_for
from tradeguard.venues import (
    Market,
    MarketKind,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    new_client_order_id,
)
from tradeguard.venues.ccxt_venue import CcxtVenue, RetryPolicy
from tradeguard.venues.keycheck import KeyVerdict
from tradeguard.venues.specs import spec_for

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
BOTH = frozenset({MarketKind.SPOT, MarketKind.SWAP})
FAST = RetryPolicy(backoff=0.01, lookup_delay=0.05)
UID = 100001


def _key() -> tuple[str, str]:
    return secrets.token_hex(9), secrets.token_urlsafe(27)


@dataclass
class Setup:
    sim: BybitSim
    url: str
    api_key: str
    secret: str

    def venue(
        self, api_key: str | None = None, secret: str | None = None, *, timeout_ms: int = 5_000
    ) -> CcxtVenue:
        schema = schema_for("bybit")
        values = {"api_key": api_key or self.api_key, "api_secret": secret or self.secret}
        fields: dict[str, Secret] = {
            spec.name: spec.parse(values[spec.name]) for spec in schema.fields
        }
        return CcxtVenue(
            spec_for("bybit"),
            lambda: nullcontext(fields),
            api_url=self.url,
            timeout_ms=timeout_ms,
            rate_limit=False,
            retry=FAST,
        )

    def new_key(self, **kw: object) -> tuple[str, str]:
        api_key, secret = _key()
        self.sim.add_key(api_key, secret, **kw)  # type: ignore[arg-type]
        return api_key, secret


@pytest.fixture
def bb() -> Iterator[Setup]:
    sim = BybitSim()
    api_key, secret = _key()
    sim.add_key(api_key, secret)
    sim.deposit("USDT", "100000")
    sim.deposit("BTC", "1")
    with bybit_sim(sim) as url:
        yield Setup(sim, url, api_key, secret)


def limit(symbol: str, side: Side, amount: str, price: str, **kw: object) -> OrderRequest:
    return OrderRequest(
        new_client_order_id(), symbol, side, OrderType.LIMIT, Decimal(amount), Decimal(price), **kw
    )  # type: ignore[arg-type]


def market(symbol: str, side: Side, amount: str, **kw: object) -> OrderRequest:
    return OrderRequest(
        new_client_order_id(), symbol, side, OrderType.MARKET, Decimal(amount), **kw
    )  # type: ignore[arg-type]


BOTH_SYMBOLS = pytest.mark.parametrize("symbol", [SPOT, PERP])


def test_markets_carry_the_precision_and_limits(bb: Setup) -> None:
    async def scenario() -> Mapping[str, Market]:
        venue = bb.venue()
        try:
            return await venue.load_markets()
        finally:
            await venue.close()

    markets = asyncio.run(scenario())
    spot, perp = markets[SPOT], markets[PERP]
    assert (spot.kind, spot.venue_symbol, spot.base, spot.quote) == (
        MarketKind.SPOT,
        "BTCUSDT",
        "BTC",
        "USDT",
    )
    assert (spot.price_tick, spot.amount_step) == (Decimal("0.01"), Decimal("0.000001"))
    assert (spot.min_amount, spot.max_amount) == (Decimal("0.000048"), Decimal("71.73956243"))
    assert spot.min_notional == Decimal(1)
    assert spot.active
    assert (perp.kind, perp.venue_symbol, perp.settle) == (MarketKind.SWAP, "BTCUSDT", "USDT")
    assert (perp.price_tick, perp.amount_step) == (Decimal("0.1"), Decimal("0.001"))
    assert (perp.min_amount, perp.max_amount) == (Decimal("0.001"), Decimal(1190))
    assert perp.min_notional == Decimal(5)
    assert perp.price_significant_digits is None
    assert {path for _, path in bb.sim.requests} == {"/v5/market/instruments-info"}


def test_balance(bb: Setup) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            balance = await venue.fetch_balance()
        finally:
            await venue.close()
        assert balance.total("USDT") == Decimal(100_000)
        assert balance.free("USDT") == Decimal(100_000)
        assert balance.total("BTC") == Decimal(1)

    asyncio.run(scenario())


@BOTH_SYMBOLS
def test_a_limit_order_lifecycle_by_venue_and_client_id(bb: Setup, symbol: str) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            request = limit(symbol, Side.BUY, "0.01", "40000")
            placed = await venue.create_order(request)
            assert (placed.status, placed.client_order_id, placed.symbol) == (
                OrderStatus.OPEN,
                request.client_order_id,
                symbol,
            )
            assert (placed.amount, placed.price) == (Decimal("0.01"), Decimal(40000))
            by_id = await venue.fetch_order(symbol, venue_order_id=placed.venue_order_id)
            by_client = await venue.fetch_order(symbol, client_order_id=request.client_order_id)
            for order in (by_id, by_client):
                assert order.venue_order_id == placed.venue_order_id
                assert order.client_order_id == request.client_order_id
                assert (order.status, order.side, order.type) == (
                    OrderStatus.OPEN,
                    Side.BUY,
                    OrderType.LIMIT,
                )
                assert (order.amount, order.filled, order.price) == (
                    Decimal("0.01"),
                    Decimal(0),
                    Decimal(40000),
                )
            assert [o.venue_order_id for o in await venue.fetch_open_orders(symbol)] == [
                placed.venue_order_id
            ]
            if symbol == SPOT:  # 400 USDT and the taker fee the sim reserves are held
                assert (await venue.fetch_balance()).lines["USDT"].used == Decimal("400.4")
            canceled = await venue.cancel_order(symbol, client_order_id=request.client_order_id)
            assert canceled.venue_order_id == placed.venue_order_id
            assert canceled.status is OrderStatus.CANCELED
            assert await venue.fetch_open_orders(symbol) == []
        finally:
            await venue.close()
        assert bb.sim.order_requests[0].params["orderLinkId"] == request.client_order_id
        assert len(bb.sim.order_requests) == 1

    asyncio.run(scenario())


@BOTH_SYMBOLS
def test_a_market_order_fills_and_its_trade_carries_the_fee(bb: Setup, symbol: str) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            request = market(symbol, Side.BUY, "0.01")
            order = await venue.create_order(request)
            assert order.status is OrderStatus.FILLED
            assert (order.filled, order.average) == (Decimal("0.01"), Decimal(50000))
            assert order.client_order_id == request.client_order_id
            assert (order.fee, order.fee_currency) == (Decimal("0.5"), "USDT")
            [trade] = await venue.fetch_my_trades(symbol)
            assert (trade.price, trade.amount) == (Decimal(50000), Decimal("0.01"))
            assert (trade.fee, trade.fee_currency) == (Decimal("0.5"), "USDT")
            assert trade.venue_order_id == order.venue_order_id
            assert trade.client_order_id == request.client_order_id
            assert trade.side is Side.BUY
            assert trade.liquidity.value == "taker"
        finally:
            await venue.close()

    asyncio.run(scenario())


@BOTH_SYMBOLS
def test_insufficient_funds_is_typed_and_nothing_is_booked(bb: Setup, symbol: str) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            amount = "5" if symbol == SPOT else "100"
            with pytest.raises(InsufficientFunds):
                await venue.create_order(limit(symbol, Side.BUY, amount, "40000"))
        finally:
            await venue.close()
        assert len(bb.sim.order_requests) == 1
        assert bb.sim.orders() == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("symbol", "off_tick", "tick", "too_small", "why"),
    [
        (SPOT, "40000.005", "0.01", "0.00001", "below the minimum 0.000048"),
        (PERP, "40000.05", "0.1", "0.0005", "below the amount step 0.001"),
    ],
)
def test_orders_outside_the_market_rules_are_refused_before_sending(
    bb: Setup, symbol: str, off_tick: str, tick: str, too_small: str, why: str
) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            await venue.load_markets()
            with pytest.raises(InvalidOrder, match=rf"not a multiple of the tick {tick}"):
                await venue.create_order(limit(symbol, Side.BUY, "0.01", off_tick))
            with pytest.raises(InvalidOrder, match=why):
                await venue.create_order(limit(symbol, Side.BUY, too_small, "40000"))
            with pytest.raises(InvalidOrder, match="notional"):
                await venue.create_order(limit(symbol, Side.BUY, "0.001", "0.1"))
        finally:
            await venue.close()
        assert bb.sim.order_requests == []

    asyncio.run(scenario())


@BOTH_SYMBOLS
def test_a_lost_reply_is_recovered_by_client_id_without_a_second_order(
    bb: Setup, symbol: str
) -> None:
    async def scenario() -> None:
        venue = bb.venue(timeout_ms=700)
        try:
            await venue.load_markets()
            bb.sim.drop_reply_after_accept(1)
            request = limit(symbol, Side.BUY, "0.01", "40000")
            order = await venue.create_order(request)
            assert order.client_order_id == request.client_order_id
            assert order.status is OrderStatus.OPEN
        finally:
            await venue.close()
        assert len(bb.sim.order_requests) == 1
        [booked] = bb.sim.orders()
        assert booked.client_order_id == request.client_order_id
        assert str(booked.order_id) == order.venue_order_id

    asyncio.run(scenario())


@BOTH_SYMBOLS
def test_a_reply_cut_after_booking_is_recovered_by_client_id(bb: Setup, symbol: str) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            await venue.load_markets()
            bb.sim.malformed_next(1, path="/v5/order/create", processed=True)
            request = limit(symbol, Side.BUY, "0.01", "40000")
            order = await venue.create_order(request)
            assert order.client_order_id == request.client_order_id
            assert order.status is OrderStatus.OPEN
        finally:
            await venue.close()
        assert len(bb.sim.order_requests) == 1
        [booked] = bb.sim.orders()
        assert str(booked.order_id) == order.venue_order_id

    asyncio.run(scenario())


def test_a_rate_limited_order_is_typed_and_nothing_is_booked(bb: Setup) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            await venue.load_markets()
            bb.sim.rate_limit_next(1, path="/v5/order/create")
            with pytest.raises(RateLimited, match="10006"):
                await venue.create_order(limit(SPOT, Side.BUY, "0.01", "40000"))
        finally:
            await venue.close()
        assert len(bb.sim.order_requests) == 1  # refused, not re-sent
        assert bb.sim.orders() == []

    asyncio.run(scenario())


def test_a_wrong_secret_is_an_auth_failure(bb: Setup) -> None:
    async def scenario() -> None:
        venue = bb.venue(secret=secrets.token_urlsafe(27))
        try:
            with pytest.raises(VenueAuthFailed, match="10004"):
                await venue.fetch_balance()
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_reduce_only_on_linear_is_sent_and_enforced(bb: Setup) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            with pytest.raises(VenueRejected, match="110017") as refused:
                await venue.create_order(market(PERP, Side.SELL, "0.01", reduce_only=True))
            assert not isinstance(refused.value, InvalidOrder)  # it was sent: the venue said no
            await venue.create_order(market(PERP, Side.BUY, "0.01"))
            closing = await venue.create_order(market(PERP, Side.SELL, "0.01", reduce_only=True))
            assert closing.status is OrderStatus.FILLED
            assert closing.reduce_only
        finally:
            await venue.close()
        assert bb.sim.order_requests[0].params["reduceOnly"] is True
        assert "reduceOnly" not in bb.sim.order_requests[1].params
        assert bb.sim.engine.position(UID, "linear:BTCUSDT").size == 0

    asyncio.run(scenario())


def test_open_orders_without_a_symbol_cover_spot_and_linear(bb: Setup) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            spot = await venue.create_order(limit(SPOT, Side.BUY, "0.01", "40000"))
            perp = await venue.create_order(limit(PERP, Side.BUY, "0.01", "40000"))
            every = {o.venue_order_id for o in await venue.fetch_open_orders()}
            assert every == {spot.venue_order_id, perp.venue_order_id}
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_a_venue_refusal_carries_the_venues_error_code(bb: Setup) -> None:
    async def scenario() -> None:
        venue = bb.venue()
        try:
            with pytest.raises(InsufficientFunds) as refused:
                await venue.create_order(limit(SPOT, Side.BUY, "5", "40000"))
        finally:
            await venue.close()
        assert refused.value.code == "170131"

    asyncio.run(scenario())


# -- key vetting ------------------------------------------------------------------------------


def _verdict(bb: Setup, api_key: str, secret: str) -> KeyVerdict:
    async def scenario() -> KeyVerdict:
        venue = bb.venue(api_key, secret)
        try:
            return await venue.check_key(BOTH)
        finally:
            await venue.close()

    return asyncio.run(scenario())


def test_trade_only_keys_are_accepted_and_one_without_an_ip_allow_list_is_warned(
    bb: Setup,
) -> None:
    bound = _verdict(bb, *bb.new_key(ips=["127.0.0.1"]))
    assert bound.accepted
    assert bound.warnings == ()
    assert bound.permissions.trade_kinds == BOTH
    assert not bound.permissions.moves_funds
    bound.raise_if_refused()

    unbound = _verdict(bb, bb.api_key, bb.secret)  # query-api lists its ips as ["*"]
    assert unbound.accepted
    [warning] = unbound.warnings
    assert "not restricted to your IP addresses" in warning


def test_keys_that_move_funds_or_cannot_trade_are_refused(bb: Setup) -> None:
    trade: dict[str, Sequence[str]] = {
        "ContractTrade": ["Order", "Position"],
        "Spot": ["SpotTrade"],
    }
    for permission in ("Withdraw", "AccountTransfer"):
        movers = {**trade, "Wallet": [permission]}
        verdict = _verdict(bb, *bb.new_key(permissions=movers, ips=["127.0.0.1"]))
        assert not verdict.accepted
        assert verdict.refusals == (f"it can move funds off the account (Wallet.{permission})",)
        with pytest.raises(KeyPermissionRefused, match=rf"Wallet\.{permission}.*API Management"):
            verdict.raise_if_refused()

    read_only = _verdict(bb, *bb.new_key(read_only=True, ips=["127.0.0.1"]))
    assert read_only.refusals == ("it cannot trade (read-only)",)
    assert not read_only.permissions.can_trade

    spot_only = _verdict(bb, *bb.new_key(permissions={"Spot": ["SpotTrade"]}, ips=["127.0.0.1"]))
    assert spot_only.refusals == ("it cannot trade swap markets, which are needed",)
