"""Download historical candles from a venue's public OHLCV endpoint into a CSV candle file.

`download_candles` pages through `fetch_ohlcv` (1000 candles a request), checks every page
(each candle well formed, strictly after the one before, across page boundaries too, steps a
whole number of timeframes) and appends each page in one fsynced write. Interrupted, it loses at
most the page in flight: run it again and it validates the file, cuts off a partial last line
if a write was torn, and continues after the file's last candle. Data before the file's first
candle (an earlier `since`) is fetched and the file rewritten atomically.

The candle still open at the venue is never stored: only candles closed by the clock, with
open times in `[since_ms, until_ms)`. A period the venue has no candles for is a gap: stored as
is, counted in the result, and reported by `read_candles` and `tradeguard data list`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ccxt.async_support as ccxt_async

from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.marketdata.feeds import Sleep, clock_ms
from tradeguard.marketdata.files import (
    append_candles,
    check_sequence,
    format_ms,
    read_candles,
    repair_torn_tail,
    write_candles,
)
from tradeguard.marketdata.ohlcv import fetch_page

__all__ = ["PAGE_LIMIT", "DownloadResult", "ProgressCallback", "download_candles"]

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000

ProgressCallback = Callable[[int, int], None]
"""Called after each stored page with (candle periods covered so far, periods in the range)."""


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    added: int  # candles written by this run
    rows: int  # candles in the file now
    first_ms: int | None
    last_ms: int | None
    resumed: bool  # the file existed and was continued
    gaps: int  # gaps (runs of missing candles) in the data added by this run
    repaired_bytes: int  # bytes of a torn last line cut off before resuming


async def download_candles(
    exchange: ccxt_async.Exchange,
    symbol: str,
    timeframe: Timeframe | str,
    since_ms: int,
    until_ms: int | None,
    dest_file: Path,
    progress_callback: ProgressCallback | None = None,
    *,
    clock: Clock | None = None,
    limit: int = PAGE_LIMIT,
    sleep: Sleep = asyncio.sleep,
    max_attempts: int | None = 8,
) -> DownloadResult:
    """Download `symbol`'s closed candles opened in `[since_ms, until_ms)` (until: now when
    None) into the CSV `dest_file`, resuming a partial file. The caller closes the exchange."""
    tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
    clock = clock or SystemClock()
    dest_file = Path(dest_file)
    if dest_file.suffix != ".csv":
        raise MarketDataError(f"{dest_file}: downloads are stored as .csv")
    now = clock_ms(clock)
    end = now if until_ms is None else min(until_ms, now)
    if since_ms >= end:
        raise MarketDataError(
            f"nothing to download: since {format_ms(since_ms)} is not before "
            f"{'until' if until_ms is not None and until_ms <= now else 'now'} {format_ms(end)}"
        )
    total = max(1, -(-(end - since_ms) // tf.ms))
    fetch = _Pager(exchange, symbol, tf, since_ms, end, now, limit, sleep, max_attempts)

    repaired = 0
    first_ms: int | None = None
    last_ms: int | None = None
    rows = added = gaps = 0
    resumed = dest_file.exists()
    if resumed:
        repaired = repair_torn_tail(dest_file)
        if repaired:
            log.warning(
                "%s: cut off a partial last line (%d bytes) left by an interrupted download",
                dest_file,
                repaired,
            )
        existing = read_candles(dest_file, timeframe=tf, fill_gaps="keep")
        rows = len(existing.candles)
        if existing.candles:
            first_ms, last_ms = existing.candles[0].ts_ms, existing.candles[-1].ts_ms
        if first_ms is not None and since_ms < first_ms:
            earlier = await fetch.all_before(first_ms)
            if earlier:
                joined = [*earlier, existing.candles[0]]
                gaps += len(check_sequence(joined, tf, source=f"{exchange.id} {symbol}"))
                write_candles(dest_file, [*earlier, *existing.candles], tf)
                rows += len(earlier)
                added += len(earlier)
                first_ms = earlier[0].ts_ms
        del existing

    cursor = since_ms if last_ms is None else max(since_ms, last_ms + tf.ms)
    if progress_callback is not None:
        progress_callback(min(total, max(0, -(-(cursor - since_ms) // tf.ms))), total)
    while cursor < end:
        page = await fetch.page(cursor)
        if not page:
            break
        found = check_sequence(page, tf, source=f"{exchange.id} {symbol}", after_ms=last_ms)
        if last_ms is None:
            write_candles(dest_file, page, tf)
            first_ms = page[0].ts_ms
        else:
            append_candles(dest_file, page, tf, after_ms=last_ms)
        gaps += len(found)
        added += len(page)
        rows += len(page)
        last_ms = page[-1].ts_ms
        cursor = last_ms + tf.ms
        if progress_callback is not None:
            progress_callback(min(total, -(-(cursor - since_ms) // tf.ms)), total)
    if progress_callback is not None:
        progress_callback(total, total)
    return DownloadResult(dest_file, added, rows, first_ms, last_ms, resumed, gaps, repaired)


@dataclass
class _Pager:
    exchange: ccxt_async.Exchange
    symbol: str
    tf: Timeframe
    since_ms: int
    end_ms: int
    now_ms: int
    limit: int
    sleep: Sleep
    max_attempts: int | None

    async def page(self, cursor: int) -> list[Candle]:
        """Closed candles from `cursor` on, inside the range; [] when the venue has no more."""
        raw = await fetch_page(
            self.exchange,
            self.symbol,
            self.tf,
            since_ms=cursor,
            limit=self.limit,
            sleep=self.sleep,
            max_attempts=self.max_attempts,
        )
        if raw and raw[0].ts_ms < cursor:
            raise MarketDataError(
                f"{self.exchange.id} {self.symbol}: asked for candles from {cursor}, got one "
                f"from {raw[0].ts_ms}; the venue ignores `since`, so the download would repeat "
                "candles"
            )
        closed_before = self.now_ms - self.tf.ms + 1  # opened before this: closed by now
        return [c for c in raw if c.ts_ms < self.end_ms and c.ts_ms < closed_before]

    async def all_before(self, stop_ms: int) -> list[Candle]:
        """Every candle from `since_ms` up to (not including) `stop_ms`."""
        out: list[Candle] = []
        cursor = self.since_ms
        while cursor < stop_ms:
            page = [c for c in await self.page(cursor) if c.ts_ms < stop_ms]
            if not page:
                break
            check_sequence(
                page,
                self.tf,
                source=f"{self.exchange.id} {self.symbol}",
                after_ms=out[-1].ts_ms if out else None,
            )
            out.extend(page)
            cursor = page[-1].ts_ms + self.tf.ms
        return out
