"""The real ccxt Hyperliquid client against the loopback simulator (tests/sims/hyperliquid.py).

Each test runs one ccxt exchange in `asyncio.run`, pointed at a fresh simulator through
`ccxt_exchange(..., testnet=True)`, signing with keys made at run time.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from tests.sims.hyperliquid import HyperliquidSim, hyperliquid_sim

from tradeguard.marketdata.exchanges import ccxt_exchange

ETH = "ETH/USDC:USDC"


@dataclass
class Venue:
    sim: HyperliquidSim
    url: str
    master: LocalAccount
    agent: LocalAccount

    @asynccontextmanager
    async def client(
        self,
        *,
        key: LocalAccount | None = None,
        wallet: str | None = None,
        testnet: bool = True,
        **config: Any,
    ) -> AsyncIterator[ccxt_async.Exchange]:
        signer = key or self.agent
        exchange = ccxt_exchange(
            "hyperliquid",
            api_url=self.url,
            testnet=testnet,
            config={
                "walletAddress": wallet or self.master.address,
                "privateKey": signer.key.hex(),
                "enableRateLimit": False,  # the sim needs no pacing; keeps the file fast
                "timeout_on_exit": 0,  # close() would otherwise sleep 250 ms
                **config,
            },
        )
        if not testnet:  # the URL override only: mainnet signing against the testnet sim
            exchange.urls["api"] = {"public": self.url, "private": self.url}
        try:
            await exchange.load_markets()
            yield exchange
        finally:
            await exchange.close()


@pytest.fixture
def venue() -> Iterator[Venue]:
    sim = HyperliquidSim()
    master, agent = Account.create(), Account.create()
    sim.fund(master.address, 10_000)
    sim.approve_agent(master.address, agent.address, name="bot")
    with hyperliquid_sim(sim) as url:
        yield Venue(sim, url, master, agent)


def cloid() -> str:
    return "0x" + secrets.token_hex(16)


def test_load_markets_lists_the_perps(venue: Venue) -> None:
    async def scenario() -> Any:
        async with venue.client() as exchange:
            return exchange.markets

    markets = asyncio.run(scenario())
    eth = markets[ETH]
    assert eth["swap"]
    assert eth["settle"] == "USDC"
    assert eth["precision"]["amount"] == 0.0001
    assert eth["limits"]["leverage"]["max"] == 25
    assert "BTC/USDC:USDC" in markets


def test_fetch_balance_reports_the_perp_margin_account(venue: Venue) -> None:
    async def scenario() -> Any:
        async with venue.client() as exchange:
            return await exchange.fetch_balance({"type": "swap"})

    balance = asyncio.run(scenario())
    assert balance["USDC"]["total"] == 10_000
    assert balance["USDC"]["used"] == 0


def test_limit_order_with_client_order_id_round_trip(venue: Venue) -> None:
    client_id = cloid()

    async def scenario() -> tuple[Any, ...]:
        async with venue.client() as exchange:
            placed = await exchange.create_order(
                ETH, "limit", "buy", 0.01, 1900, {"clientOrderId": client_id}
            )
            by_id = await exchange.fetch_order(placed["id"], ETH)
            by_cloid = await exchange.fetch_order("", ETH, {"clientOrderId": client_id})
            open_orders = await exchange.fetch_open_orders(ETH)
            await exchange.cancel_order(placed["id"], ETH)
            after = await exchange.fetch_order(placed["id"], ETH)
            still_open = await exchange.fetch_open_orders(ETH)
            return placed, by_id, by_cloid, open_orders, after, still_open

    placed, by_id, by_cloid, open_orders, after, still_open = asyncio.run(scenario())
    assert placed["clientOrderId"] == client_id
    assert by_id["status"] == "open"
    assert (by_id["side"], by_id["price"], by_id["amount"]) == ("buy", 1900, 0.01)
    assert by_id["clientOrderId"] == client_id
    assert by_cloid["id"] == placed["id"]
    assert [o["id"] for o in open_orders] == [placed["id"]]
    assert after["status"] == "canceled"
    assert still_open == []
    (sent,) = venue.sim.order_actions
    assert sent["action"]["orders"][0]["c"] == client_id
    assert sent["action"]["orders"][0]["t"] == {"limit": {"tif": "Gtc"}}
    assert sent["user"] == venue.master.address.lower()
    assert sent["signer"] == venue.agent.address.lower()


def test_cancel_by_client_order_id(venue: Venue) -> None:
    client_id = cloid()

    async def scenario() -> Any:
        async with venue.client() as exchange:
            placed = await exchange.create_order(
                ETH, "limit", "sell", 0.01, 2100, {"clientOrderId": client_id}
            )
            await exchange.cancel_order(placed["id"], ETH, {"clientOrderId": client_id})
            return await exchange.fetch_order(placed["id"], ETH)

    assert asyncio.run(scenario())["status"] == "canceled"
    cancels = [r["action"] for r in venue.sim.exchange_requests if "cancel" in r["action"]["type"]]
    assert cancels == [{"type": "cancelByCloid", "cancels": [{"asset": 1, "cloid": client_id}]}]


def test_market_order_fills_at_the_mark_and_shows_in_my_trades_with_fee(venue: Venue) -> None:
    client_id = cloid()

    async def scenario() -> tuple[Any, ...]:
        async with venue.client() as exchange:
            placed = await exchange.create_order(
                ETH, "market", "buy", 0.01, 2000, {"clientOrderId": client_id}
            )
            trades = await exchange.fetch_my_trades(ETH)
            balance = await exchange.fetch_balance()
            return placed, trades, balance

    placed, trades, balance = asyncio.run(scenario())
    assert placed["filled"] == 0.01
    assert placed["average"] == 2000
    (sent,) = venue.sim.order_actions
    wire = sent["action"]["orders"][0]
    assert wire["t"] == {"limit": {"tif": "Ioc"}}  # ccxt's market order: IOC at 5% slippage
    assert wire["p"] == "2100"
    (trade,) = trades
    assert trade["order"] == placed["id"]
    assert trade["takerOrMaker"] == "taker"
    assert trade["fee"] == {"cost": 0.009, "currency": "USDC"}  # 20 USDC * 0.045 %
    assert trade["info"]["cloid"] == client_id
    assert venue.sim.position(venue.master.address, "ETH").szi == Decimal("0.01")
    assert balance["USDC"]["used"] == 2.0  # 20 USDC notional at 10x


def test_ioc_that_cannot_cross_is_refused_and_nothing_rests(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as exchange:
            await exchange.create_order(ETH, "limit", "buy", 0.01, 1900, {"timeInForce": "IOC"})

    with pytest.raises(ccxt_async.InvalidOrder, match="could not immediately match"):
        asyncio.run(scenario())
    assert venue.sim.open_orders(venue.master.address) == []


def test_resting_order_fills_as_maker_when_the_price_crosses(venue: Venue) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with venue.client() as exchange:
            placed = await exchange.create_order(ETH, "limit", "buy", 0.01, 1950)
            venue.sim.set_price("ETH", 1940)
            order = await exchange.fetch_order(placed["id"], ETH)
            trades = await exchange.fetch_my_trades(ETH)
            return order, trades

    order, (trade,) = asyncio.run(scenario())
    assert order["status"] == "closed"
    assert trade["price"] == 1950
    assert trade["takerOrMaker"] == "maker"
    assert trade["fee"]["cost"] == pytest.approx(0.002925)  # 19.5 USDC * 0.015 %


def test_reduce_only_is_sent_as_r_and_refused_without_a_position(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as exchange:
            await exchange.create_order(ETH, "market", "sell", 0.01, 2000, {"reduceOnly": True})

    with pytest.raises(ccxt_async.InvalidOrder, match="Reduce only order would increase"):
        asyncio.run(scenario())
    assert venue.sim.order_actions[0]["action"]["orders"][0]["r"] is True


def test_insufficient_margin_is_refused(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as exchange:
            await exchange.create_order(ETH, "limit", "buy", 60, 1900)  # 114k USDC at 10x

    with pytest.raises(ccxt_async.InsufficientFunds, match="Insufficient margin"):
        asyncio.run(scenario())


def test_an_unapproved_key_is_refused(venue: Venue) -> None:
    stranger = Account.create()

    async def scenario() -> None:
        async with venue.client(key=stranger) as exchange:
            await exchange.create_order(ETH, "limit", "buy", 0.01, 1900)

    with pytest.raises(ccxt_async.InvalidOrder, match=f"{stranger.address.lower()} does not exist"):
        asyncio.run(scenario())
    assert venue.sim.order_actions == []
    assert venue.sim.orders == {}


def test_an_expired_agent_is_refused(venue: Venue) -> None:
    late = Account.create()
    venue.sim.approve_agent(
        venue.master.address, late.address, valid_until_ms=int(time.time() * 1000) - 1
    )

    async def scenario() -> None:
        async with venue.client(key=late) as exchange:
            await exchange.create_order(ETH, "limit", "buy", 0.01, 1900)

    with pytest.raises(ccxt_async.InvalidOrder, match="does not exist"):
        asyncio.run(scenario())


def test_a_body_changed_after_signing_recovers_a_stranger_and_is_refused(venue: Venue) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with venue.client() as exchange:
            request = exchange.create_orders_request(
                [{"symbol": ETH, "type": "limit", "side": "buy", "amount": 0.01, "price": 1900}]
            )
            request["action"]["orders"][0]["s"] = "1"  # 100x the size the agent signed
            with pytest.raises(ccxt_async.InvalidOrder, match="does not exist") as tampered:
                await exchange.private_post_exchange(request)
            # "1900.0" is the same price, but not the bytes the venue hashes ("1900")
            action = {
                "type": "order",
                "orders": [
                    {
                        "a": 1,
                        "b": True,
                        "p": "1900.0",
                        "s": "0.01",
                        "r": False,
                        "t": {"limit": {"tif": "Gtc"}},
                    }
                ],
                "grouping": "na",
            }
            nonce = exchange.incrementing_nonce()
            signed = {
                "action": action,
                "nonce": nonce,
                "signature": exchange.sign_l1_action(action, nonce),
            }
            with pytest.raises(ccxt_async.InvalidOrder, match="does not exist") as padded:
                await exchange.private_post_exchange(signed)
            return tampered.value, padded.value

    asyncio.run(scenario())
    assert venue.sim.orders == {}


def test_a_mainnet_signature_is_refused_by_the_testnet_venue(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client(testnet=False) as exchange:
            await exchange.create_order(ETH, "limit", "buy", 0.01, 1900)

    with pytest.raises(ccxt_async.InvalidOrder, match="does not exist"):
        asyncio.run(scenario())
    assert venue.sim.orders == {}


def test_an_agent_of_another_master_trades_for_that_master_and_user_role_shows_it(
    venue: Venue,
) -> None:
    """Hyperliquid learns the account from the signer, not from ccxt's walletAddress: another
    master's agent is accepted and trades on the other account. Only `userRole` tells."""
    other_master, other_agent = Account.create(), Account.create()
    venue.sim.fund(other_master.address, 1_000)
    venue.sim.approve_agent(other_master.address, other_agent.address)

    async def scenario() -> tuple[Any, Any]:
        async with venue.client(key=other_agent) as exchange:
            role = await exchange.public_post_info(
                {"type": "userRole", "user": other_agent.address}
            )
            await exchange.create_order(ETH, "limit", "buy", 0.01, 1900)
            return role, await exchange.fetch_open_orders(ETH)  # walletAddress: venue.master

    role, seen_by_configured_master = asyncio.run(scenario())
    assert role == {"role": "agent", "data": {"user": other_master.address.lower()}}
    assert seen_by_configured_master == []
    assert venue.sim.open_orders(venue.master.address) == []
    assert len(venue.sim.open_orders(other_master.address)) == 1


def test_user_role_answers_agent_user_sub_account_vault_and_missing(venue: Venue) -> None:
    sub, vault = Account.create().address, Account.create().address
    venue.sim.add_sub_account(venue.master.address, sub)
    venue.sim.add_vault(vault)
    addresses = (venue.agent.address, venue.master.address, sub, vault, Account.create().address)

    async def scenario() -> Any:
        async with venue.client() as exchange:
            return [
                await exchange.public_post_info({"type": "userRole", "user": address})
                for address in addresses
            ]

    agent, user, sub_account, vault_role, missing = asyncio.run(scenario())
    assert agent == {"role": "agent", "data": {"user": venue.master.address.lower()}}
    assert user == {"role": "user"}
    assert sub_account == {"role": "subAccount", "data": {"master": venue.master.address.lower()}}
    assert vault_role == {"role": "vault"}
    assert missing == {"role": "missing"}


def test_a_replayed_request_is_refused_by_nonce(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as exchange:
            request = exchange.create_orders_request(
                [{"symbol": ETH, "type": "limit", "side": "buy", "amount": 0.01, "price": 1900}]
            )
            await exchange.private_post_exchange(request)
            with pytest.raises(ccxt_async.ExchangeError, match="duplicate nonce"):
                await exchange.private_post_exchange(request)

    asyncio.run(scenario())
    assert len(venue.sim.order_actions) == 1
    assert len(venue.sim.open_orders(venue.master.address)) == 1


def test_a_nonce_outside_the_time_window_is_refused(venue: Venue) -> None:
    venue.sim.clock = lambda: int(time.time() * 1000) + 3 * 86_400_000

    async def scenario() -> None:
        async with venue.client() as exchange:
            await exchange.create_order(ETH, "limit", "buy", 0.01, 1900)

    with pytest.raises(ccxt_async.ExchangeError, match="Invalid nonce"):
        asyncio.run(scenario())
    assert venue.sim.orders == {}


def test_http_429_surfaces_as_rate_limit_exceeded_and_5xx_as_not_available(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client() as exchange:
            venue.sim.rate_limit_next(1, match="clearinghouseState")
            with pytest.raises(ccxt_async.RateLimitExceeded):
                await exchange.fetch_balance()
            venue.sim.fail_next(1, 502, match="order")
            with pytest.raises(ccxt_async.ExchangeNotAvailable):
                await exchange.create_order(ETH, "limit", "buy", 0.01, 1900)

    asyncio.run(scenario())
    assert venue.sim.order_actions == []  # refused before processing


def test_a_lost_reply_is_a_timeout_and_the_order_exists_once(venue: Venue) -> None:
    client_id = cloid()

    async def scenario() -> Any:
        async with venue.client(timeout=300) as exchange:
            venue.sim.drop_reply_after_accept(1)
            with pytest.raises(ccxt_async.RequestTimeout):
                await exchange.create_order(
                    ETH, "limit", "buy", 0.01, 1900, {"clientOrderId": client_id}
                )
            return await exchange.fetch_order("", ETH, {"clientOrderId": client_id})

    found = asyncio.run(scenario())
    assert found["status"] == "open"
    assert len(venue.sim.order_actions) == 1


def test_a_master_key_approves_ccxts_builder_fee_and_pays_it(venue: Venue) -> None:
    """With the master's own key and ccxt's default options, ccxt approves its builder
    (0.01 %) on first use and attaches it to every order: the fill costs that fee on top."""

    async def scenario() -> Any:
        async with venue.client(key=venue.master, privateKey="0x" + venue.master.key.hex()) as ex:
            await ex.create_order(ETH, "market", "buy", 0.01, 2000)
            return await ex.fetch_my_trades(ETH)

    (trade,) = asyncio.run(scenario())
    assert venue.sim.order_actions[0]["action"]["builder"]["f"] == 10
    assert trade["info"]["builderFee"] == "0.002"
    assert trade["fee"]["cost"] == pytest.approx(0.011)
