"""The paper venue: the embedded default venue, filling orders against candles.

`PaperVenue` implements the `Venue` protocol; `PaperConfig` sets its fees, slippage and
starting balances; `market_from_candles` builds a market from the candle data. Its state lives
in a `PaperBook`: the store's database (`SqlBook`, the default) or memory for backtests
(`MemoryBook`, through `PaperVenue.in_memory`). The fill rules are in `engine` (pure,
deterministic, no I/O) and docs/venues.md ("The paper venue").
"""

from tradeguard.venues.paper.book import MemoryBook, PaperBook, SqlBook
from tradeguard.venues.paper.config import PaperConfig
from tradeguard.venues.paper.markets import market_from_candles
from tradeguard.venues.paper.venue import CandleSource, PaperVenue

__all__ = [
    "CandleSource",
    "MemoryBook",
    "PaperBook",
    "PaperConfig",
    "PaperVenue",
    "SqlBook",
    "market_from_candles",
]
