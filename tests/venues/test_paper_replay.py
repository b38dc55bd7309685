"""The paper venue replays real candles deterministically, and keeps its books straight.

The replay runs the bundled ETH/BTC 5-minute candles through the replay feed (which moves a
manual clock to each candle's close, as a backtest does) with a scripted order sequence twice,
on fresh databases, and compares everything the venue reports. The property test drives random
orders and candles and checks that no balance goes negative, that nothing stays held once no
order is open, and that every unit of base and quote is accounted for by the fills and their
fees.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import InsufficientFunds, InvalidOrder, VenueRejected
from tradeguard.marketdata import ReplayFeed, load_sample
from tradeguard.marketdata.candles import Candle
from tradeguard.store import DatabaseTarget, create_engine, resolve_database, upgrade
from tradeguard.venues import (
    Balance,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Trade,
)
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles

D = Decimal
SYMBOL = "ETH/BTC"
REPLAY_CANDLES = 600


def sample_candles(limit: int) -> list[Candle]:
    """Real ETH/BTC 5-minute candles, from the sample bundled with tradeguard."""
    return load_sample("ETH_BTC-5m.csv").candles[:limit]


def migrated(target: DatabaseTarget) -> sa.Engine:
    engine = create_engine(target)
    upgrade(engine, target)
    return engine


def sqlite_target(directory: Path) -> DatabaseTarget:
    directory.mkdir(mode=0o700)
    return resolve_database(None, directory, production=False)


def cid(n: int) -> str:
    return f"0x{n:032x}"


async def replay(
    engine: sa.Engine, candles: list[Candle]
) -> tuple[list[Trade], list[Order], Balance]:
    """A scripted strategy: it buys at market, takes profit with limits, protects with stops,
    and cancels what it left behind; the clock is at each candle's close."""
    market = market_from_candles(SYMBOL, candles)
    clock = ManualClock(datetime.fromtimestamp(candles[0].ts_ms / 1000, UTC))
    venue = PaperVenue(
        engine,
        account="replay",
        markets={SYMBOL: market},
        config=PaperConfig(
            maker_fee_bps=D("7.5"),
            taker_fee_bps=D(10),
            slippage_bps=D(3),
            starting_balances={"BTC": D(5)},
        ),
        clock=clock,
    )
    tick = market.price_tick
    n = 0
    accepted: list[str] = []
    feed = ReplayFeed({SYMBOL: candles}, "5m", clock=clock)  # moves the clock to each close
    i = -1
    async for symbol, candle in feed:
        i += 1
        assert clock.now().timestamp() * 1000 == candle.ts_ms + 300_000
        await venue.on_candle(symbol, candle)
        requests: list[OrderRequest] = []
        close = candle.close
        if i % 40 == 0:
            requests.append(OrderRequest(cid(n + 1), SYMBOL, Side.BUY, OrderType.MARKET, D(3)))
        if i % 40 == 5:
            up = (close * D("1.004") / tick).to_integral_value(ROUND_FLOOR) * tick
            requests.append(
                OrderRequest(cid(n + 2), SYMBOL, Side.SELL, OrderType.LIMIT, D("1.5"), price=up)
            )
            down = (close * D("0.993") / tick).to_integral_value(ROUND_FLOOR) * tick
            requests.append(
                OrderRequest(
                    cid(n + 3), SYMBOL, Side.SELL, OrderType.STOP_MARKET, D("1.5"), stop_price=down
                )
            )
        if i % 40 == 20:
            below = (close * D("0.998") / tick).to_integral_value(ROUND_FLOOR) * tick
            requests.append(
                OrderRequest(cid(n + 4), SYMBOL, Side.BUY, OrderType.LIMIT, D(1), price=below)
            )
        if i % 40 == 39:
            for order in await venue.fetch_open_orders(SYMBOL):
                await venue.cancel_order(SYMBOL, venue_order_id=order.venue_order_id)
        for request in requests:
            with contextlib.suppress(InsufficientFunds, VenueRejected, InvalidOrder):
                await venue.create_order(request)
                accepted.append(request.client_order_id)
        n += 4
    trades = await venue.fetch_my_trades(SYMBOL)
    orders = [await venue.fetch_order(SYMBOL, client_order_id=c) for c in accepted]
    balance = await venue.fetch_balance()
    await venue.close()
    return trades, orders, balance


def test_the_same_candles_and_orders_give_the_same_fills_ids_and_balances(
    db_target: DatabaseTarget, tmp_path: Path
) -> None:
    candles = sample_candles(REPLAY_CANDLES)
    first = asyncio.run(replay(migrated(db_target), candles))
    second = asyncio.run(replay(migrated(sqlite_target(tmp_path / "again")), candles))
    assert first == second
    trades, orders, balance = first
    statuses = {o.status for o in orders}
    assert {OrderStatus.FILLED, OrderStatus.CANCELED} <= statuses
    assert {t.liquidity for t in trades} == {"maker", "taker"}
    assert [t.trade_id for t in trades] == [f"PT{k:010d}" for k in range(1, len(trades) + 1)]
    # Every unit accounted for: the books equal the start plus the fills, less the fees.
    btc, eth = D(5), D(0)
    for t in trades:
        sign = 1 if t.side is Side.BUY else -1
        eth += sign * t.amount
        btc -= sign * t.price * t.amount + t.fee
    assert balance.total("BTC") == btc
    assert balance.total("ETH") == eth


# -- property ----------------------------------------------------------------------------------

_accounts = itertools.count()

actions = st.lists(
    st.one_of(
        st.tuples(st.just("candle"), st.integers(-400, 400), st.integers(0, 300)),
        st.tuples(
            st.just("order"),
            st.sampled_from(list(Side)),
            st.sampled_from(list(OrderType)),
            st.integers(1, 400),  # amount in 0.01 ETH
            st.integers(-300, 300),  # price offset from the last close, bps
        ),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=30,
)


@pytest.fixture(scope="module")
def property_engine(tmp_path_factory: pytest.TempPathFactory) -> sa.Engine:
    return migrated(sqlite_target(tmp_path_factory.mktemp("paper") / "data"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=actions)
def test_books_stay_straight_whatever_the_orders_and_candles(
    property_engine: sa.Engine, script: list[tuple[Any, ...]]
) -> None:
    asyncio.run(_drive(property_engine, script))


async def _drive(engine: sa.Engine, script: list[tuple[Any, ...]]) -> None:
    tick = D("0.01")
    market = market_from_candles(
        "ETH/USDT", [Candle(0, D("2000.00"), D(2000), D(2000), D(2000), D(1))]
    )
    start = {"USDT": D(10_000), "ETH": D(3)}
    clock = ManualClock()
    venue = PaperVenue(
        engine,
        account=f"prop-{next(_accounts)}",
        markets={"ETH/USDT": market},
        config=PaperConfig(starting_balances=start),
        clock=clock,
    )
    close, ts, n = D(2000), 0, 0
    for action in script:
        clock.advance(60)
        if action[0] == "candle":
            _, move_bps, range_bps = action
            open_ = close
            close = max(tick, (open_ * (10_000 + move_bps) / 10_000).quantize(tick))
            spread = (max(open_, close) * range_bps / 10_000).quantize(tick)
            high, low = max(open_, close) + spread, max(tick, min(open_, close) - spread)
            await venue.on_candle("ETH/USDT", Candle(ts, open_, high, low, close, D(1)))
            ts += 60_000
        elif action[0] == "order":
            _, side, type_, amount, offset = action
            n += 1
            price = max(tick, (close * (10_000 + offset) / 10_000).quantize(tick))
            kw: dict[str, Decimal] = {}
            if type_ in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                kw["price"] = price
            if type_ in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT):
                kw["stop_price"] = price
            request = OrderRequest(cid(n), "ETH/USDT", side, type_, D(amount) / 100, **kw)
            with contextlib.suppress(InsufficientFunds, VenueRejected):
                await venue.create_order(request)
        else:
            open_orders = await venue.fetch_open_orders()
            if open_orders:
                victim = open_orders[action[1] % len(open_orders)]
                await venue.cancel_order("ETH/USDT", venue_order_id=victim.venue_order_id)
        balance = await venue.fetch_balance()
        for line in balance.lines.values():
            assert line.free >= 0
            assert line.used >= 0
        if not await venue.fetch_open_orders():
            assert all(line.used == 0 for line in balance.lines.values())
    usdt, eth = start["USDT"], start["ETH"]
    for t in await venue.fetch_my_trades("ETH/USDT"):
        sign = 1 if t.side is Side.BUY else -1
        eth += sign * t.amount
        usdt -= sign * t.price * t.amount + t.fee
    balance = await venue.fetch_balance()
    assert balance.total("USDT") == usdt
    assert balance.total("ETH") == eth
