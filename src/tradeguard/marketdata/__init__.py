"""Market data: candles, candle files, replay and live feeds, downloads."""

from tradeguard.marketdata.candles import Candle, Timeframe

__all__ = ["Candle", "Timeframe"]
