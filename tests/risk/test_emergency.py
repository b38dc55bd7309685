"""The emergency stop while orders are being submitted concurrently.

Three bots submit resting limit orders from many concurrent tasks through one `GuardedVenue`
to tradeguard's Binance venue (real ccxt, real HTTP) on the loopback simulator. Mid-stream, a
halt runs. When it returns, the simulator must hold no open order of a halted bot, and from
then on it must accept none: the submitters keep trying and every try is refused by the risk
engine before anything is sent.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Iterator
from contextlib import nullcontext
from decimal import Decimal

import pytest
from tests.sims.binance import BinanceSim, binance_sim

from tradeguard.core.events import MemorySink
from tradeguard.risk import (
    GLOBAL,
    BotLimits,
    OrderIntent,
    Reason,
    RiskDenied,
    RiskEngine,
    Scope,
)
from tradeguard.risk.guard import GuardedVenue, halt
from tradeguard.secrets import Secret
from tradeguard.vault.schemas import schema_for
from tradeguard.venues.ccxt_venue import CcxtVenue, RetryPolicy
from tradeguard.venues.specs import spec_for

D = Decimal
SYMBOL = "BTC/USDT"
ACCOUNT = "binance:main"
BOTS = ("alpha", "beta", "gamma")
TASKS_PER_BOT = 3


@pytest.fixture
def sim_url() -> Iterator[tuple[BinanceSim, str, dict[str, Secret]]]:
    sim = BinanceSim()
    api_key, secret = secrets.token_hex(16), secrets.token_hex(32)
    sim.add_key(api_key, secret, spot=True, futures=False, ip_restrict=True)
    sim.deposit("main", "USDT", D(10_000_000))
    values = {"api_key": api_key, "api_secret": secret}
    fields = {s.name: s.parse(values[s.name]) for s in schema_for("binance").fields}
    with binance_sim(sim) as url:
        yield sim, url, fields


async def storm(
    sim: BinanceSim, url: str, fields: dict[str, Secret], scope: Scope, halted_bots: set[str]
) -> None:
    venue = CcxtVenue(
        spec_for("binance"),
        lambda: nullcontext(fields),
        api_url=url,
        rate_limit=False,
        retry=RetryPolicy(backoff=0.01, lookup_delay=0.05),
    )
    engine = RiskEngine(events=MemorySink())
    markets = await venue.load_markets()
    engine.add_account(ACCOUNT, markets, await venue.fetch_balance())
    limits = BotLimits(
        capital=D(1_000_000),
        symbols=frozenset({SYMBOL}),
        max_open_orders=10_000,
        max_submits_per_minute=10**6,
        blocked_zones=frozenset(),
    )
    for bot in BOTS:
        engine.register_bot(bot, user="desk" if bot != "gamma" else "solo", account=ACCOUNT,
                            limits=limits)  # fmt: skip
    engine.on_price(ACCOUNT, SYMBOL, D(30_000))
    guard = GuardedVenue(engine, venue, account=ACCOUNT)
    numbers = itertools.count()
    halt_returned = asyncio.Event()
    accepted_after: list[str] = []
    sent: dict[str, str] = {}  # client order id -> bot, for every order a bot tried
    denied_after: dict[str, int] = dict.fromkeys(BOTS, 0)

    wrong: list[str] = []

    def finished() -> bool:
        return halt_returned.is_set() and min(denied_after[b] for b in halted_bots) >= 10

    async def submitter(bot: str) -> None:
        while not finished():
            n = next(numbers)
            cid = f"0x{n:032x}"
            price = D(29_000) + n % 50  # rests: below the last price
            intent = OrderIntent(cid, SYMBOL, "buy", "limit", D("0.001"), price)
            sent[cid] = bot
            try:
                await guard.submit(bot, intent)
            except RiskDenied as denied:
                if bot not in halted_bots or denied.reason is not Reason.HALTED:
                    wrong.append(f"{bot}: {denied.message}")
                if halt_returned.is_set():
                    denied_after[bot] += 1
                await asyncio.sleep(0.001)
                continue
            if halt_returned.is_set() and bot in halted_bots:
                accepted_after.append(cid)

    tasks = [asyncio.create_task(submitter(b)) for b in BOTS for _ in range(TASKS_PER_BOT)]
    while len(sim.spot.orders("main")) < 30:  # let the storm build up
        await asyncio.sleep(0.01)
    canceled = await halt(engine, [guard], scope, actor="operator", reason="test")
    halt_returned.set()
    ids_at_return = {o.client_order_id for o in sim.spot.orders("main")}
    still_open = {o.client_order_id for o in sim.spot.open_orders("main")}
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    finally:
        await venue.close()

    halted_ids = {cid for cid, bot in sent.items() if bot in halted_bots}
    assert wrong == []
    assert canceled, "the halt canceled nothing: the storm never got going"
    assert {o.client_order_id for o in canceled} <= ids_at_return & halted_ids
    assert not (still_open & halted_ids), "a halted bot's order was left open"
    assert accepted_after == []
    late = [
        o.client_order_id
        for o in sim.spot.orders("main")
        if o.client_order_id not in ids_at_return and o.client_order_id in halted_ids
    ]
    assert late == []
    # the bots outside the scope kept trading
    for bot in set(BOTS) - halted_bots:
        assert engine.book(bot).orders, f"{bot} should still have open orders"


@pytest.mark.parametrize(
    ("scope", "halted"),
    [
        (GLOBAL, {"alpha", "beta", "gamma"}),
        (Scope.user("desk"), {"alpha", "beta"}),
        (Scope.bot("beta"), {"beta"}),
    ],
    ids=["all", "user", "bot"],
)
def test_no_order_is_accepted_after_the_halt_returns(
    sim_url: tuple[BinanceSim, str, dict[str, Secret]], scope: Scope, halted: set[str]
) -> None:
    sim, url, fields = sim_url
    asyncio.run(storm(sim, url, fields, scope, halted))
