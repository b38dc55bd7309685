"""ReplayFeed: symbols merged in time order, each candle delivered once it has closed by the
clock; a simulated clock is moved to each close, a real one is paced by `speed`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradeguard.core.clock import ManualClock, SystemClock
from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata import Candle, ReplayFeed, load_sample
from tradeguard.marketdata.feeds import clock_ms

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
M5 = 300_000
H1 = 3_600_000


def candle(ts: int, price: str = "1") -> Candle:
    p = Decimal(price)
    return Candle(ts, p, p, p, p, Decimal(1))


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def collect(feed: ReplayFeed, clock: ManualClock) -> list[tuple[str, int, int]]:
    """(symbol, open time, clock time when delivered) for every candle."""
    return [(symbol, c.ts_ms, clock_ms(clock)) async for symbol, c in feed]


def test_two_symbols_merge_in_time_order_and_the_clock_reaches_each_close() -> None:
    btc = [candle(T0 + i * M5) for i in range(3)]
    eth = [candle(T0 + M5 + i * M5) for i in range(3)]  # starts one candle later
    clock = ManualClock(at(T0))
    feed = ReplayFeed({"BTC/USDT": btc, "ETH/USDT": eth}, "5m", clock=clock)
    assert feed.start_ms == T0
    assert len(feed) == 6
    got = asyncio.run(collect(feed, clock))
    assert got == [
        ("BTC/USDT", T0, T0 + M5),
        ("BTC/USDT", T0 + M5, T0 + 2 * M5),  # equal close: symbols in the order given
        ("ETH/USDT", T0 + M5, T0 + 2 * M5),
        ("BTC/USDT", T0 + 2 * M5, T0 + 3 * M5),
        ("ETH/USDT", T0 + 2 * M5, T0 + 3 * M5),
        ("ETH/USDT", T0 + 3 * M5, T0 + 4 * M5),
    ]
    # never before its close: the clock at delivery is the candle's open plus the timeframe
    assert all(now == ts + M5 for _, ts, now in got)


def test_a_candle_is_not_seen_before_it_closes_even_with_gaps() -> None:
    clock = ManualClock(at(T0))
    series = [candle(T0), candle(T0 + 3 * M5)]  # a gap: the clock jumps past it
    got = asyncio.run(collect(ReplayFeed({"X/Y": series}, "5m", clock=clock), clock))
    assert [now for *_, now in got] == [T0 + M5, T0 + 4 * M5]


def test_a_clock_already_past_a_candles_close_is_refused() -> None:
    clock = ManualClock()  # 2026: after every candle below
    feed = ReplayFeed({"X/Y": [candle(T0)]}, "5m", clock=clock)
    with pytest.raises(MarketDataError, match="start the clock at the feed's start_ms"):
        asyncio.run(collect(feed, clock))


def test_unsorted_or_duplicate_input_is_refused() -> None:
    for series in ([candle(T0 + M5), candle(T0)], [candle(T0), candle(T0)]):
        with pytest.raises(MarketDataError, match="sorted oldest first without duplicates"):
            ReplayFeed({"X/Y": series}, "5m", clock=ManualClock(at(T0)))
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed({"X/Y": []}, "5m", clock=ManualClock(), speed=-1)


def test_the_bundled_perpetual_replays_hour_by_hour() -> None:
    sample = load_sample("XRP_USDT_PERP-1h.csv")
    start = sample.candles[0].ts_ms
    clock = ManualClock(at(start))
    got = asyncio.run(
        collect(ReplayFeed({"XRP/USDT:USDT": sample.candles}, sample.timeframe, clock=clock), clock)
    )
    assert len(got) == 100
    assert clock_ms(clock) == sample.candles[-1].ts_ms + H1


def test_a_real_clock_with_speed_sleeps_to_pace_the_replay() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    series = [candle(T0 + i * H1) for i in range(4)]
    feed = ReplayFeed({"X/Y": series}, "1h", clock=SystemClock(), speed=3600, sleep=sleep)

    async def run() -> int:
        return len([c async for c in feed])

    assert asyncio.run(run()) == 4
    # an hour of market time is a second at speed 3600; the stand-in sleep takes no time, so
    # each wait runs to its due time counted from the start: 1, 2, 3 seconds
    assert [round(s) for s in slept] == [1, 2, 3]


def test_a_real_clock_at_speed_zero_replays_without_waiting() -> None:
    async def never(seconds: float) -> None:
        raise AssertionError("no sleeping at speed 0")

    series = [candle(T0 + i * H1) for i in range(50)]
    feed = ReplayFeed({"X/Y": series}, "1h", clock=SystemClock(), sleep=never)

    async def run() -> int:
        return len([c async for c in feed])

    assert asyncio.run(run()) == 50
