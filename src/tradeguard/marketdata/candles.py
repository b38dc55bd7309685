"""Candles and timeframes: the unit of market data every feed, venue and backtest shares."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

__all__ = ["Candle", "Timeframe"]

_TIMEFRAME = re.compile(r"([1-9][0-9]{0,2})([mhdw])")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A candle length as venues spell it: `1m`, `5m`, `1h`, `4h`, `1d`, `1w`."""

    text: str
    ms: int

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        match = _TIMEFRAME.fullmatch(text)
        if not match:
            raise ValueError(
                f"timeframe {text!r} is not a number and a unit (m, h, d, w), e.g. 5m, 1h, 1d"
            )
        return cls(text, int(match.group(1)) * _UNIT_MS[match.group(2)])

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar. `ts_ms` is the bar's open time in UTC milliseconds; prices are in the
    quote currency and the volume in the base currency, all `Decimal`."""

    ts_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.ts_ms / 1000, UTC)

    def is_consistent(self) -> bool:
        """High is the highest and low the lowest of the four prices; nothing is negative."""
        return (
            self.low <= min(self.open, self.close)
            and self.high >= max(self.open, self.close)
            and self.low >= 0
            and self.volume >= 0
        )
