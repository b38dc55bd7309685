"""`LiveFeed`: closed candles of a venue, as they close, from its public OHLCV endpoint.

Each symbol is polled shortly after each candle's close; every candle is delivered once, in
time order across symbols, never twice. A network failure (timeout, 5xx, rate limit) is retried
with backoff and the feed carries on; a malformed row stops it with `MarketDataError`. Values
become `Decimal` through `str`, never through the float's binary value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import ccxt.async_support as ccxt_async

from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.marketdata.feeds import Sleep, clock_ms
from tradeguard.marketdata.ohlcv import fetch_page

__all__ = ["LiveFeed"]

log = logging.getLogger(__name__)


class LiveFeed:
    """Closed candles of `symbols` from a ccxt exchange's public OHLCV endpoint.

    Starts with the candles that opened at or after `since_ms` (default: the last candle closed
    when the feed starts), then polls shortly after each close. A candle counts as closed when
    the clock has passed its close by `settle_s` seconds (room for clock skew and the venue's
    own lag). A gap (the venue has no candle for a period) is logged, not filled. The caller
    owns and closes the exchange.
    """

    def __init__(
        self,
        exchange: ccxt_async.Exchange,
        symbols: Sequence[str],
        timeframe: Timeframe | str,
        *,
        clock: Clock | None = None,
        since_ms: int | None = None,
        settle_s: float = 2.0,
        limit: int = 1000,
        max_backoff: float = 60.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not symbols:
            raise ValueError("a live feed needs at least one symbol")
        if len(set(symbols)) != len(symbols):
            raise ValueError("each symbol once")
        self.exchange = exchange
        self.symbols = list(symbols)
        self.timeframe = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        self.clock: Clock = clock or SystemClock()
        self.since_ms = since_ms
        self.settle_ms = int(settle_s * 1000)
        self.limit = limit
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._last: dict[str, int] = {}  # symbol -> open time of the last candle delivered

    def __aiter__(self) -> AsyncIterator[tuple[str, Candle]]:
        return self._poll()

    def _closed_before(self) -> int:
        """Candles that opened before this time (ms) have closed and settled."""
        return clock_ms(self.clock) - self.settle_ms - self.timeframe.ms + 1

    async def _poll(self) -> AsyncIterator[tuple[str, Candle]]:
        tf_ms = self.timeframe.ms
        if self.since_ms is None:
            latest_open = (self._closed_before() - 1) // tf_ms * tf_ms
            self.since_ms = latest_open
        while True:
            batch: list[tuple[int, int, str, Candle]] = []
            for order, symbol in enumerate(self.symbols):
                for candle in await self._new_candles(symbol):
                    batch.append((candle.ts_ms, order, symbol, candle))
            for _, _, symbol, candle in sorted(batch, key=lambda x: (x[0], x[1])):
                yield symbol, candle
            now = clock_ms(self.clock)
            next_poll = (now - self.settle_ms) // tf_ms * tf_ms + tf_ms + self.settle_ms
            await self._sleep(max(next_poll - now, 1) / 1000)

    async def _new_candles(self, symbol: str) -> list[Candle]:
        tf_ms = self.timeframe.ms
        last = self._last.get(symbol)
        since = self.since_ms if last is None else last + tf_ms
        fresh: list[Candle] = []
        while True:
            page = await fetch_page(
                self.exchange,
                symbol,
                self.timeframe,
                since_ms=since,
                limit=self.limit,
                sleep=self._sleep,
                max_backoff=self.max_backoff,
            )
            closed_before = self._closed_before()
            took = 0
            for candle in page:
                if last is not None and candle.ts_ms <= last:
                    continue  # already delivered: a venue may repeat its last candle
                if since is not None and candle.ts_ms < since:
                    continue
                if candle.ts_ms >= closed_before:
                    break  # still open (the venue's last row): it comes on a later poll
                if last is not None and candle.ts_ms - last > tf_ms:
                    log.warning(
                        "%s %s: %d candle(s) of %s missing before %d (the venue has none)",
                        self.exchange.id,
                        symbol,
                        (candle.ts_ms - last) // tf_ms - 1,
                        self.timeframe,
                        candle.ts_ms,
                    )
                if last is not None and (candle.ts_ms - last) % tf_ms:
                    raise MarketDataError(
                        f"{self.exchange.id} {symbol}: candle {candle.ts_ms} is not a whole "
                        f"number of {self.timeframe} after {last}"
                    )
                fresh.append(candle)
                last = candle.ts_ms
                took += 1
            if last is not None:
                self._last[symbol] = last
            if len(page) < self.limit or took == 0 or last is None:
                return fresh
            since = last + tf_ms  # a full page: there may be more closed candles
