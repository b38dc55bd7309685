"""Candle feeds: `async for symbol, candle in feed`, each candle delivered once, after it closes.

- `ReplayFeed` replays stored candles of one or more symbols, merged in time order. On a
  simulated clock (one with `advance`, such as `ManualClock`) it moves the clock to each
  candle's close before delivering it, so whoever reads the clock (the paper venue, the risk
  engine, a backtest) sees the time at which the candle became known. On a real clock it
  replays as fast as it can (`speed=0`), or paced: `speed=60` plays an hour in a minute.
- `LiveFeed` (in `marketdata.live`, which needs ccxt) polls a venue's public OHLCV endpoint.

Feeds know nothing of venues or orders: they read candles and a clock. This module does not
import ccxt, so a replay (a backtest, the paper venue) loads none of it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from tradeguard.core.clock import Clock
from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata.candles import Candle, Timeframe

__all__ = ["CandleFeed", "ReplayFeed", "SimulatedClock", "Sleep", "clock_ms"]

Sleep = Callable[[float], Awaitable[None]]
"""`asyncio.sleep`, or a stand-in that moves a simulated clock."""


class CandleFeed(Protocol):
    """Anything that yields `(symbol, candle)` pairs, each candle once and after it closed."""

    def __aiter__(self) -> AsyncIterator[tuple[str, Candle]]: ...


@runtime_checkable
class SimulatedClock(Clock, Protocol):
    """A clock the feed may move (`ManualClock`)."""

    def advance(self, seconds: float) -> None: ...


def clock_ms(clock: Clock) -> int:
    """The clock's time in UTC milliseconds."""
    return int(clock.now().timestamp() * 1000)


def _timeframe(value: Timeframe | str) -> Timeframe:
    return Timeframe.parse(value) if isinstance(value, str) else value


class ReplayFeed:
    """Stored candles of one or more symbols (each oldest first, one timeframe), merged by
    close time; at equal times in the order the symbols were given."""

    def __init__(
        self,
        candles: Mapping[str, Sequence[Candle]],
        timeframe: Timeframe | str,
        *,
        clock: Clock,
        speed: float = 0.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.timeframe = _timeframe(timeframe)
        if speed < 0:
            raise ValueError("speed is 0 (as fast as possible) or a positive factor")
        for symbol, series in candles.items():
            for a, b in itertools.pairwise(series):
                if b.ts_ms <= a.ts_ms:
                    raise MarketDataError(
                        f"replay of {symbol}: candle {b.ts_ms} is not after {a.ts_ms}; "
                        "candles must be sorted oldest first without duplicates"
                    )
        self._candles = {symbol: list(series) for symbol, series in candles.items()}
        self.clock = clock
        self.speed = speed
        self._sleep = sleep

    @property
    def start_ms(self) -> int | None:
        """The open time of the earliest candle: where a simulated clock should start."""
        firsts = [series[0].ts_ms for series in self._candles.values() if series]
        return min(firsts) if firsts else None

    def __len__(self) -> int:
        return sum(len(series) for series in self._candles.values())

    def __aiter__(self) -> AsyncIterator[tuple[str, Candle]]:
        return self._replay()

    async def _replay(self) -> AsyncIterator[tuple[str, Candle]]:
        tf_ms = self.timeframe.ms
        merged = heapq.merge(
            *(
                [(c.ts_ms + tf_ms, order, symbol, c) for c in series]
                for order, (symbol, series) in enumerate(self._candles.items())
            )
        )
        simulated = self.clock if isinstance(self.clock, SimulatedClock) else None
        first_close: int | None = None
        started = self.clock.monotonic()
        for close_ms, _, symbol, candle in merged:
            if simulated is not None:
                ahead_ms = close_ms - clock_ms(simulated)
                if ahead_ms < 0:
                    raise MarketDataError(
                        f"replay of {symbol}: the simulated clock is at "
                        f"{simulated.now():%Y-%m-%d %H:%M} UTC, after the close of the candle "
                        f"{candle.ts_ms}; start the clock at the feed's start_ms"
                    )
                simulated.advance(ahead_ms / 1000)
            elif self.speed > 0:
                first_close = close_ms if first_close is None else first_close
                due = started + (close_ms - first_close) / 1000 / self.speed
                wait = due - self.clock.monotonic()
                if wait > 0:
                    await self._sleep(wait)
            yield symbol, candle
            await asyncio.sleep(0)  # let others run between candles, even at full speed
