"""tradeguard's Hyperliquid venue (CcxtVenue + ccxt) against the loopback simulator: orders,
key vetting, and an order whose reply is lost recovered by its client id, never sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from tests.sims.hyperliquid import HyperliquidSim, hyperliquid_sim

from tradeguard.core.errors import (
    InsufficientFunds,
    InvalidOrder,
    KeyPermissionRefused,
    OrderNotFound,
    RateLimited,
)
from tradeguard.secrets import Secret
from tradeguard.vault.schemas import schema_for
from tradeguard.venues import (
    MarketKind,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    new_client_order_id,
)
from tradeguard.venues.ccxt_venue import CcxtVenue, RetryPolicy
from tradeguard.venues.specs import spec_for

ETH = "ETH/USDC:USDC"
SWAP = frozenset({MarketKind.SWAP})
FAST = RetryPolicy(backoff=0.01, lookup_delay=0.05)


@dataclass
class Setup:
    sim: HyperliquidSim
    url: str
    master: LocalAccount
    agent: LocalAccount

    def venue(self, key: LocalAccount | None = None, *, timeout_ms: int = 5_000) -> CcxtVenue:
        schema = schema_for("hyperliquid")
        values = {
            "agent_private_key": (key or self.agent).key.hex(),
            "account_address": self.master.address,
        }
        fields: dict[str, Secret] = {
            spec.name: spec.parse(values[spec.name]) for spec in schema.fields
        }
        return CcxtVenue(
            spec_for("hyperliquid"),
            lambda: nullcontext(fields),
            api_url=self.url,
            testnet=True,
            timeout_ms=timeout_ms,
            rate_limit=False,
            retry=FAST,
        )


@pytest.fixture
def hl() -> Iterator[Setup]:
    sim = HyperliquidSim()
    master, agent = Account.create(), Account.create()
    sim.fund(master.address, 10_000)
    sim.approve_agent(master.address, agent.address, name="bot")
    with hyperliquid_sim(sim) as url:
        yield Setup(sim, url, master, agent)


def limit(side: Side, amount: str, price: str, **kw: object) -> OrderRequest:
    return OrderRequest(
        new_client_order_id(), ETH, side, OrderType.LIMIT, Decimal(amount), Decimal(price), **kw
    )  # type: ignore[arg-type]


def test_markets_balance_and_an_order_lifecycle_without_a_builder_fee(hl: Setup) -> None:
    async def scenario() -> None:
        venue = hl.venue()
        try:
            market = (await venue.load_markets())[ETH]
            assert (market.amount_step, market.price_significant_digits) == (Decimal("0.0001"), 5)
            assert (await venue.fetch_balance()).total("USDC") == Decimal(10_000)
            request = limit(Side.BUY, "0.5", "1900")
            placed = await venue.create_order(request)
            assert (placed.status, placed.client_order_id) == (
                OrderStatus.OPEN,
                request.client_order_id,
            )
            by_client = await venue.fetch_order(ETH, client_order_id=request.client_order_id)
            assert by_client.venue_order_id == placed.venue_order_id
            assert [o.venue_order_id for o in await venue.fetch_open_orders(ETH)] == [
                placed.venue_order_id
            ]
            action = hl.sim.order_actions[0]["action"]
            assert "builder" not in action  # ccxt's own builder fee is switched off
            canceled = await venue.cancel_order(ETH, client_order_id=request.client_order_id)
            assert canceled.status is OrderStatus.CANCELED
            assert await venue.fetch_open_orders(ETH) == []
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_a_taker_order_fills_and_its_trade_carries_the_fee(hl: Setup) -> None:
    async def scenario() -> None:
        venue = hl.venue()
        try:
            request = limit(Side.BUY, "1", "2100", time_in_force=TimeInForce.IOC)
            order = await venue.create_order(request)
            assert order.status is OrderStatus.FILLED
            [trade] = await venue.fetch_my_trades(ETH)
            assert (trade.price, trade.amount) == (Decimal(2000), Decimal(1))
            assert trade.fee == Decimal(2000) * Decimal("0.00045")
            assert trade.venue_order_id == order.venue_order_id
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_orders_outside_the_market_rules_are_refused_before_sending(hl: Setup) -> None:
    async def scenario() -> None:
        venue = hl.venue()
        try:
            with pytest.raises(InvalidOrder, match=r"not a multiple of the tick 0\.1"):
                await venue.create_order(limit(Side.BUY, "1", "1900.55"))
            with pytest.raises(InvalidOrder, match="more than 5 significant digits"):
                await venue.create_order(limit(Side.BUY, "0.01", "12345.6"))
            with pytest.raises(InvalidOrder, match="amount step"):
                await venue.create_order(limit(Side.BUY, "0.00001", "1900"))
            with pytest.raises(InvalidOrder, match="no market 'DOGE/USDC:USDC'"):
                await venue.create_order(
                    OrderRequest(new_client_order_id(), "DOGE/USDC:USDC", Side.BUY,
                                 OrderType.MARKET, Decimal(1))
                )  # fmt: skip
            with pytest.raises(InsufficientFunds):
                await venue.create_order(limit(Side.BUY, "100", "1900"))
        finally:
            await venue.close()
        assert hl.sim.order_actions[-1]["action"]["orders"][0]["s"] == "100"
        assert len(hl.sim.order_actions) == 1  # only the one the venue had to judge was sent

    asyncio.run(scenario())


def test_a_lost_reply_is_recovered_by_client_id_without_a_second_order(hl: Setup) -> None:
    async def scenario() -> None:
        venue = hl.venue(timeout_ms=700)
        try:
            await venue.load_markets()
            hl.sim.drop_reply_after_accept(1, hold_s=5)
            request = limit(Side.BUY, "0.5", "1900")
            order = await venue.create_order(request)
            assert order.client_order_id == request.client_order_id
            assert order.status is OrderStatus.OPEN
        finally:
            hl.sim.release_held_replies()
            await venue.close()
        assert len(hl.sim.order_actions) == 1
        assert len(hl.sim.open_orders(hl.master.address)) == 1

    asyncio.run(scenario())


def test_an_unknown_order_and_a_rate_limit_are_typed(hl: Setup) -> None:
    async def scenario() -> None:
        venue = hl.venue()
        try:
            with pytest.raises(OrderNotFound):
                await venue.fetch_order(ETH, client_order_id=new_client_order_id())
            hl.sim.rate_limit_next(1, match="order")
            with pytest.raises(RateLimited):
                await venue.create_order(limit(Side.BUY, "0.5", "1900"))
        finally:
            await venue.close()
        assert hl.sim.order_actions == []

    asyncio.run(scenario())


def test_only_an_api_wallet_of_the_declared_account_passes_the_key_check(hl: Setup) -> None:
    stranger_master, strangers_agent = Account.create(), Account.create()
    hl.sim.fund(stranger_master.address, 100)
    hl.sim.approve_agent(stranger_master.address, strangers_agent.address)

    async def verdict(key: LocalAccount) -> object:
        venue = hl.venue(key)
        try:
            return await venue.check_key(SWAP)
        finally:
            await venue.close()

    assert asyncio.run(verdict(hl.agent)).accepted  # type: ignore[attr-defined]
    main = asyncio.run(verdict(hl.master))
    with pytest.raises(KeyPermissionRefused, match="main wallet's own key"):
        main.raise_if_refused()  # type: ignore[attr-defined]
    other = asyncio.run(verdict(strangers_agent))
    assert "different account" in other.refusals[0]  # type: ignore[attr-defined]
    unknown = asyncio.run(verdict(Account.create()))
    assert "not an authorized API wallet" in unknown.refusals[0]  # type: ignore[attr-defined]
