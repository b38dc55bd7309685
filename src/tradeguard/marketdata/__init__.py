"""Market data: candles, candle files, replay and live feeds, downloads.

This package's own names load no ccxt (a replay or a backtest needs none of it); the live feed
and downloads live in `tradeguard.marketdata.live` and `tradeguard.marketdata.download`.
"""

from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.marketdata.feeds import CandleFeed, ReplayFeed
from tradeguard.marketdata.files import (
    CandleFile,
    Gap,
    GapPolicy,
    append_candles,
    candle_file_name,
    candle_path,
    read_candles,
    write_candles,
)
from tradeguard.marketdata.sample import list_samples, load_sample, sample_path

__all__ = [
    "Candle",
    "CandleFeed",
    "CandleFile",
    "Gap",
    "GapPolicy",
    "ReplayFeed",
    "Timeframe",
    "append_candles",
    "candle_file_name",
    "candle_path",
    "list_samples",
    "load_sample",
    "read_candles",
    "sample_path",
    "write_candles",
]
