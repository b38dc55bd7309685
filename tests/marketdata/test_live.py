"""LiveFeed against the Binance simulator on loopback, through the real ccxt: each candle once,
after it closes, in time order across symbols; a failing network is ridden out; a malformed
candle stops the feed. The clock is simulated: the feed's sleeps move it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from tests.sims.binance import BinanceSim, binance_sim

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata import Candle
from tradeguard.marketdata.exchanges import ccxt_exchange
from tradeguard.marketdata.feeds import clock_ms
from tradeguard.marketdata.live import LiveFeed

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
M5 = 300_000


def candle(ts: int, price: str) -> Candle:
    p = Decimal(price)
    return Candle(ts, p, p + Decimal("0.5"), p - Decimal("0.5"), p, Decimal("1.25"))


def series(n: int, base: int) -> list[Candle]:
    return [candle(T0 + i * M5, f"{base + i}.1") for i in range(n)]


@pytest.fixture
def sim() -> BinanceSim:
    sim = BinanceSim()
    sim.set_candles("BTCUSDT", "5m", series(30, 30000))
    sim.set_candles("ETHUSDT", "5m", series(30, 2000))
    return sim


@pytest.fixture
def url(sim: BinanceSim) -> Iterator[str]:
    with binance_sim(sim) as base_url:
        yield base_url


class Run:
    """A feed on a manual clock whose sleeps advance the clock (and record themselves)."""

    def __init__(self, start_ms: int) -> None:
        self.clock = ManualClock(datetime.fromtimestamp(start_ms / 1000, UTC))
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)

    async def take(
        self, url: str, n: int, *, since_ms: int | None = None, before: object = None
    ) -> list[tuple[str, int, int, Candle]]:
        exchange = ccxt_exchange("binance", api_url=url)
        try:
            await exchange.load_markets()
            if callable(before):
                before()
            feed = LiveFeed(
                exchange,
                ["BTC/USDT", "ETH/USDT"],
                "5m",
                clock=self.clock,
                since_ms=since_ms,
                sleep=self.sleep,
            )
            got: list[tuple[str, int, int, Candle]] = []
            async for symbol, c in feed:
                got.append((symbol, c.ts_ms, clock_ms(self.clock), c))
                if len(got) == n:
                    break
            return got
        finally:
            await exchange.close()


def test_each_closed_candle_once_in_time_order_across_symbols(url: str) -> None:
    run = Run(T0 + 3 * M5 + 5_000)  # three candles closed (and settled), the fourth open
    got = asyncio.run(run.take(url, 10))
    keys = [(symbol, ts) for symbol, ts, _, _ in got]
    # starts at the last closed candle, then one per symbol per close, never one twice
    assert keys == [(s, T0 + k * M5) for k in range(2, 7) for s in ("BTC/USDT", "ETH/USDT")]
    assert len(set(keys)) == len(keys)
    # delivered only after close + settle (2 s), by the feed's own clock
    assert all(now >= ts + M5 + 2_000 for _, ts, now, _ in got)
    # it slept until the next close instead of polling in a loop
    assert all(s > 200 for s in run.slept[:3])


def test_values_are_exact_decimals(url: str) -> None:
    got = asyncio.run(Run(T0 + 3 * M5 + 5_000).take(url, 2, since_ms=T0))
    _, ts, _, c = got[0]
    assert ts == T0
    assert c == candle(T0, "30000.1")
    assert isinstance(c.close, Decimal)
    assert str(c.high) == "30000.6"


def test_since_starts_with_history_then_goes_live(url: str) -> None:
    got = asyncio.run(Run(T0 + 3 * M5 + 5_000).take(url, 8, since_ms=T0))
    assert [(s, ts) for s, ts, _, _ in got] == [
        (s, T0 + k * M5) for k in range(4) for s in ("BTC/USDT", "ETH/USDT")
    ]


def test_a_failing_network_is_retried_with_backoff(url: str, sim: BinanceSim) -> None:
    run = Run(T0 + 3 * M5 + 5_000)
    got = asyncio.run(run.take(url, 4, before=lambda: sim.fail_next(3)))
    assert [(s, ts) for s, ts, _, _ in got] == [
        (s, T0 + k * M5) for k in (2, 3) for s in ("BTC/USDT", "ETH/USDT")
    ]
    assert run.slept[:3] == [1.0, 2.0, 4.0]  # the backoff before the first answer


def test_a_malformed_candle_stops_the_feed(url: str, sim: BinanceSim) -> None:
    bad = Candle(T0 + 2 * M5, Decimal(5), Decimal(4), Decimal(3), Decimal(5), Decimal(1))
    sim.set_candles("ETHUSDT", "5m", [*series(2, 2000), bad])
    with pytest.raises(
        MarketDataError, match=r"ETH/USDT 5m: candle \d+: high 4.0 / low 3.0 do not bound"
    ):
        asyncio.run(Run(T0 + 3 * M5 + 5_000).take(url, 10))


def test_an_unknown_symbol_is_a_clear_error(url: str) -> None:
    async def run() -> None:
        exchange = ccxt_exchange("binance", api_url=url)
        try:
            feed = LiveFeed(exchange, ["DOGE/USDT"], "5m", clock=ManualClock())
            async for _ in feed:
                pass
        finally:
            await exchange.close()

    with pytest.raises(MarketDataError, match="binance has no market DOGE/USDT"):
        asyncio.run(run())
