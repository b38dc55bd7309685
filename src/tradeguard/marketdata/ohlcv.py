"""ccxt's OHLCV rows, checked, as `Candle`s; and one page of `fetch_ohlcv` that rides out a
flaky network. Shared by the live feed and downloads.

ccxt hands rows as `[ts_ms, open, high, low, close, volume]` of Python floats (or ints, or
None). Each number becomes a `Decimal` through `str` (the float's shortest representation,
which is the text the venue sent), never through the float's binary value.
"""

from __future__ import annotations

import asyncio
import logging
import math
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async

from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.marketdata.feeds import Sleep

__all__ = ["candle_from_row", "fetch_page"]

log = logging.getLogger(__name__)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def candle_from_row(row: Any, *, source: str) -> Candle:
    """One ccxt OHLCV row as a `Candle`; a malformed row raises `MarketDataError`."""
    if not isinstance(row, list | tuple) or len(row) < 6:
        raise MarketDataError(f"{source}: a candle row is not [ts, o, h, l, c, v]: {row!r:.120}")
    ts = row[0]
    if isinstance(ts, float) and ts.is_integer():
        ts = int(ts)
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise MarketDataError(f"{source}: candle timestamp {ts!r:.40} is not a time in ms")
    values: list[Decimal] = []
    for name, value in zip(("open", "high", "low", "close", "volume"), row[1:6], strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise MarketDataError(f"{source}: candle {ts}: {name} is {value!r:.40}, not a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise MarketDataError(f"{source}: candle {ts}: {name} is {value}, not finite")
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            raise MarketDataError(
                f"{source}: candle {ts}: {name} {value!r:.40} is not a number"
            ) from None
        if not number.is_finite() or number < 0:
            raise MarketDataError(f"{source}: candle {ts}: {name} is {value}")
        values.append(number)
    candle = Candle(ts, *values)
    if not candle.is_consistent():
        raise MarketDataError(
            f"{source}: candle {ts}: high {candle.high} / low {candle.low} do not bound open "
            f"{candle.open} and close {candle.close}"
        )
    return candle


async def fetch_page(
    exchange: ccxt_async.Exchange,
    symbol: str,
    timeframe: Timeframe,
    *,
    since_ms: int | None,
    limit: int,
    sleep: Sleep = asyncio.sleep,
    max_backoff: float = 60.0,
    max_attempts: int | None = None,
) -> list[Candle]:
    """One `fetch_ohlcv` call, checked row by row. A ccxt `NetworkError` (timeout, 5xx, rate
    limit) is retried with exponential backoff (1 s doubling to `max_backoff`), forever unless
    `max_attempts` is given; any other ccxt error is permanent and raises `MarketDataError`."""
    source = f"{exchange.id} {symbol} {timeframe}"
    delay = 1.0
    attempt = 0
    while True:
        attempt += 1
        try:
            rows = await exchange.fetch_ohlcv(symbol, str(timeframe), since_ms, limit)
            break
        except ccxt_async.NetworkError as e:
            if max_attempts is not None and attempt >= max_attempts:
                raise MarketDataError(
                    f"{source}: the venue did not answer after {attempt} attempt(s) "
                    f"({type(e).__name__}); check the network or TRADEGUARD_VENUE_API_URLS"
                ) from None
            log.warning(
                "%s: %s (%s); retrying in %.0f s",
                source,
                type(e).__name__,
                _one_line(str(e)),
                delay,
            )
            await sleep(delay)
            delay = min(delay * 2, max_backoff)
        except ccxt_async.BadSymbol:
            raise MarketDataError(
                f"{exchange.id} has no market {symbol}; check the symbol (e.g. BTC/USDT)"
            ) from None
        except ccxt_async.BaseError as e:
            raise MarketDataError(
                f"{source}: the venue refused ({type(e).__name__}: {_one_line(str(e))})"
            ) from None
    if not isinstance(rows, list):
        raise MarketDataError(f"{source}: fetch_ohlcv returned {type(rows).__name__}, not a list")
    return [candle_from_row(row, source=source) for row in rows]
