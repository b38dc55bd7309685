"""The paper venue: the embedded default venue, filling orders against candles.

`PaperVenue` implements the `Venue` protocol over the store; `PaperConfig` sets its fees,
slippage and starting balances; `market_from_candles` builds a market from the candle data.
The fill rules are in `engine` (pure, deterministic, no I/O) and docs/venues-paper.md.
"""

from tradeguard.venues.paper.config import PaperConfig
from tradeguard.venues.paper.markets import market_from_candles
from tradeguard.venues.paper.venue import CandleSource, PaperVenue

__all__ = ["CandleSource", "PaperConfig", "PaperVenue", "market_from_candles"]
