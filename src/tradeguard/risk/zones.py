"""Volatility zones Z1 (calmest) to Z5 (wildest): where a market's current volatility ranks
among its own recent history.

Definitions, per symbol, fed one close per closed candle, oldest first:

- log return at candle i: r_i = ln(close_i / close_{i-1}).
- realized volatility at candle t: v_t = the sample standard deviation (divisor n - 1) of the
  last `window` log returns r_{t-window+1} .. r_t (default window 20). It exists from the
  candle with `window` returns before it and including it, i.e. from the (window + 1)-th close.
- history at t: the last `lookback` volatility values v_{t-lookback+1} .. v_t, the current one
  included (default lookback 500; fewer while the series is shorter).
- percentile rank: p_t = 100 * (number of values in the history <= v_t) / len(history), so
  0 < p_t <= 100; ties count as "<=", so a value equal to every other one ranks 100.
- zone, with cut points (c1, c2, c3, c4) (default (25, 50, 75, 90)):
  Z1 if p <= c1, Z2 if p <= c2, Z3 if p <= c3, Z4 if p <= c4, else Z5.
- until the history holds at least `min_history` values (default 100), the zone and the
  percentile are None: "not classified". It is not a zone; the caller decides what to do
  with it (the risk engine's rules, not this module, say whether unknown is allowed).

With the default cuts and a long series, about 25 % of candles fall in Z1, 25 % in Z2, 25 % in
Z3, 15 % in Z4 and 10 % in Z5. A perfectly flat market (every volatility 0) ranks 100: Z5.

Volatility is a statistic about prices, not an amount of money, so it is computed in float
(math.log, math.fsum). The result is still deterministic: the same closes give the same
volatilities, percentiles and zones, bit for bit (no randomness, no clock).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise

from tradeguard.core.errors import ConfigError, MarketDataError

__all__ = ["VolatilityZones", "Zone", "ZoneConfig", "classify"]


class Zone(StrEnum):
    """A volatility zone: Z1 is the calmest, Z5 the wildest (see the module docstring)."""

    Z1 = "Z1"
    Z2 = "Z2"
    Z3 = "Z3"
    Z4 = "Z4"
    Z5 = "Z5"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    """How zones are computed (see the module docstring). Invalid values raise `ConfigError`
    naming the field."""

    window: int = 20
    lookback: int = 500
    min_history: int = 100
    cuts: tuple[float, float, float, float] = (25, 50, 75, 90)

    def __post_init__(self) -> None:
        for name in ("window", "lookback", "min_history"):
            value = getattr(self, name)
            if not _is_int(value):
                raise ConfigError(f"ZoneConfig.{name} must be an integer, got {value!r}")
        if self.window < 2:
            raise ConfigError(
                f"ZoneConfig.window must be at least 2 (a standard deviation needs two "
                f"returns), got {self.window}"
            )
        if self.min_history < 2:
            raise ConfigError(f"ZoneConfig.min_history must be at least 2, got {self.min_history}")
        if self.lookback < self.min_history:
            raise ConfigError(
                f"ZoneConfig.lookback must be at least min_history ({self.min_history}), "
                f"got {self.lookback}"
            )
        self._check_cuts()

    def _check_cuts(self) -> None:
        cuts = self.cuts
        if not isinstance(cuts, tuple) or len(cuts) != 4:
            raise ConfigError(f"ZoneConfig.cuts must be a tuple of 4 numbers, got {cuts!r}")
        for cut in cuts:
            if isinstance(cut, bool) or not isinstance(cut, int | float):
                raise ConfigError(f"ZoneConfig.cuts must hold numbers, got {cut!r} in {cuts!r}")
            if not 0 < cut < 100:  # NaN fails this too
                raise ConfigError(
                    f"ZoneConfig.cuts must each be between 0 and 100 (exclusive), got {cut!r} "
                    f"in {cuts!r}"
                )
        if any(a >= b for a, b in pairwise(cuts)):
            raise ConfigError(f"ZoneConfig.cuts must be strictly increasing, got {cuts!r}")


_DEFAULT_CONFIG = ZoneConfig()
_ZONES = (Zone.Z1, Zone.Z2, Zone.Z3, Zone.Z4)


@dataclass(slots=True)
class _Series:
    """One symbol's state. `history` is in arrival order (to know which value leaves);
    `ranked` holds the same values sorted (to count "<=" with one bisect)."""

    window: int
    lookback: int
    last_log: float | None = None
    returns: deque[float] = field(init=False)
    history: deque[float] = field(init=False)
    ranked: list[float] = field(default_factory=list)
    volatility: float | None = None
    percentile: float | None = None
    zone: Zone | None = None
    # Log closes not folded in yet (`add`), and how many arrived: once more than the deque
    # holds, the state is rebuilt from the last lookback + window closes, which fix it exactly.
    pending: deque[float] = field(init=False)
    arrived: int = 0

    def __post_init__(self) -> None:
        self.returns = deque(maxlen=self.window)
        self.history = deque()
        self.pending = deque(maxlen=self.lookback + self.window)


def _stdev(values: deque[float]) -> float:
    # Two passes (mean first, then squared deviations): the one-pass sum-of-squares formula
    # cancels catastrophically for small returns and can even go negative. fsum keeps each
    # sum correctly rounded; the window is small, so the O(window) pass is cheap.
    count = len(values)
    mean = math.fsum(values) / count
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (count - 1))


class VolatilityZones:
    """Incremental zone classifier for many symbols. Folding in one close costs O(lookback) at
    worst (one removal from and one insertion into a sorted list) plus O(window); `add` defers
    that work until a zone is asked for, and never folds more than lookback + window closes."""

    __slots__ = ("_config", "_series")

    def __init__(self, config: ZoneConfig = _DEFAULT_CONFIG) -> None:
        self._config = config
        self._series: dict[str, _Series] = {}

    @property
    def config(self) -> ZoneConfig:
        return self._config

    def update(self, symbol: str, close: Decimal) -> Zone | None:
        """Feed the close of the next closed candle of `symbol` and return its zone (None while
        not classified). A close that is not a positive finite number raises `MarketDataError`
        and changes nothing."""
        self.add(symbol, close)
        return self.zone(symbol)

    def add(self, symbol: str, close: Decimal) -> None:
        """Feed the next close without classifying it yet: the work is done when a zone is
        asked for, and at most for the last lookback + window closes (a backtest whose bot
        never asks pays one append per candle). Bad closes raise here, as in `update`."""
        log_price = self._log_price(symbol, close)
        series = self._series.get(symbol)
        if series is None:
            series = _Series(self._config.window, self._config.lookback)
            self._series[symbol] = series
        series.pending.append(log_price)
        series.arrived += 1

    def _settled(self, symbol: str) -> _Series | None:
        series = self._series.get(symbol)
        if series is None or not series.arrived:
            return series
        if series.arrived > len(series.pending):
            # Closes fell out of `pending`: start over from those that fix the state.
            fresh = _Series(self._config.window, self._config.lookback)
            fresh.pending, series = series.pending, fresh
            self._series[symbol] = series
        for log_price in series.pending:
            self._fold(series, log_price)
        series.pending.clear()
        series.arrived = 0
        return series

    def _fold(self, series: _Series, log_price: float) -> None:
        previous, series.last_log = series.last_log, log_price
        if previous is None:
            return
        # ln(close / previous) as a difference of logs: never overflows, whatever the ratio.
        series.returns.append(log_price - previous)
        if len(series.returns) < self._config.window:
            return
        current = _stdev(series.returns)
        series.volatility = current
        if len(series.history) == self._config.lookback:
            oldest = series.history.popleft()
            del series.ranked[bisect_left(series.ranked, oldest)]
        series.history.append(current)
        insort(series.ranked, current)
        if len(series.history) < self._config.min_history:
            return
        percentile = 100 * bisect_right(series.ranked, current) / len(series.ranked)
        series.percentile = percentile
        series.zone = self._zone_of(percentile)

    def zone(self, symbol: str) -> Zone | None:
        """The zone after the latest close; None if not classified yet or never seen."""
        series = self._settled(symbol)
        return None if series is None else series.zone

    def volatility(self, symbol: str) -> float | None:
        """The latest realized volatility (per candle, not annualized); None before `window`
        returns."""
        series = self._settled(symbol)
        return None if series is None else series.volatility

    def percentile(self, symbol: str) -> float | None:
        """The latest percentile rank in (0, 100]; None while not classified."""
        series = self._settled(symbol)
        return None if series is None else series.percentile

    def _zone_of(self, percentile: float) -> Zone:
        for cut, zone in zip(self._config.cuts, _ZONES, strict=True):
            if percentile <= cut:
                return zone
        return Zone.Z5

    @staticmethod
    def _log_price(symbol: str, close: Decimal) -> float:
        """ln(close), after checking the close; raises before any state changes."""
        if not isinstance(close, Decimal):
            raise MarketDataError(
                f"close for {symbol} must be a Decimal, got {type(close).__name__}"
            )
        if not close.is_finite() or close <= 0:
            raise MarketDataError(
                f"close for {symbol} must be a positive finite price, got {close}; "
                f"check the feed for this candle"
            )
        as_float = float(close)
        if not 0 < as_float < math.inf:
            raise MarketDataError(
                f"close for {symbol} is {close}, outside the range volatility can be computed "
                f"in; check the feed for this candle"
            )
        return math.log(as_float)


def classify(closes: Sequence[Decimal], config: ZoneConfig = _DEFAULT_CONFIG) -> list[Zone | None]:
    """The zone after each close of one series (None while not classified), oldest first."""
    zones = VolatilityZones(config)
    return [zones.update("series", close) for close in closes]
