"""Volatility zones: hand-built series, the unknown warm-up, configuration and input errors, a
brute-force reference for the percentile, and the bundled real candles."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeguard.core.errors import ConfigError, MarketDataError
from tradeguard.marketdata.sample import load_sample
from tradeguard.risk.zones import VolatilityZones, Zone, ZoneConfig, classify

SMALL = ZoneConfig(window=5, lookback=50, min_history=20)


def _closes_from_log_returns(returns: list[float], start: float = 100.0) -> list[Decimal]:
    level = math.log(start)
    closes = [Decimal(f"{start:.8f}")]
    for r in returns:
        level += r
        closes.append(Decimal(f"{math.exp(level):.8f}"))
    return closes


def _calm_burst_calm() -> tuple[list[Decimal], int, int]:
    """60 calm returns (~0.1 %), 10 wild ones (5 %), 40 calmer ones (~0.02 %). The sizes vary
    a little within each phase so that volatilities are not all tied. Returns the closes and
    the close indexes where the burst and the second calm phase begin."""
    calm = [0.001 * (1 + (i % 7) / 10) * (-1) ** i for i in range(60)]
    burst = [0.05 * (-1) ** i for i in range(10)]
    calmer = [0.0002 * (1 + (i % 5) / 10) * (-1) ** i for i in range(40)]
    # close k is reached by return k - 1: the burst's first return makes close 61
    return _closes_from_log_returns(calm + burst + calmer), 61, 71


def test_a_burst_is_z5_and_the_calm_after_it_is_z1() -> None:
    closes, burst_start, calm_start = _calm_burst_calm()
    zones = classify(closes, SMALL)
    # While the burst fills the 5-return window each volatility is the highest ever seen.
    assert zones[burst_start : burst_start + SMALL.window] == [Zone.Z5] * SMALL.window
    # Once the window holds only the calmer returns they rank at the bottom of the history.
    settled = calm_start + SMALL.window
    assert zones[settled : settled + 10] == [Zone.Z1] * 10
    # Before the burst, the first calm phase is classified but not extreme throughout.
    before = zones[SMALL.window + SMALL.min_history - 1 : burst_start]
    assert None not in before
    assert set(before) != {Zone.Z5}


def test_unknown_until_min_history() -> None:
    closes, _, _ = _calm_burst_calm()
    zones = VolatilityZones(SMALL)
    # The first volatility needs `window` returns (window + 1 closes, index 5); the first zone
    # needs `min_history` volatilities (index 5 + 20 - 1 = 24).
    first_volatility = SMALL.window
    first_zone = SMALL.window + SMALL.min_history - 1
    for index, close in enumerate(closes[: first_zone + 1]):
        zone = zones.update("ETH/BTC", close)
        assert (zones.volatility("ETH/BTC") is not None) == (index >= first_volatility)
        assert (zone is not None) == (index >= first_zone)
        assert zones.zone("ETH/BTC") == zone
        assert (zones.percentile("ETH/BTC") is not None) == (index >= first_zone)
    assert zones.zone("never seen") is None
    assert zones.volatility("never seen") is None
    assert zones.percentile("never seen") is None


def test_volatility_is_the_sample_stdev_of_log_returns() -> None:
    closes = [Decimal(c) for c in ("100", "101", "99.5", "100.25", "98")]
    zones = VolatilityZones(ZoneConfig(window=4, lookback=10, min_history=2))
    for close in closes:
        zones.update("X", close)
    # ln(99.5 / 101) etc., computed differently from the module (a ratio, not a log difference)
    expected = statistics.stdev([math.log(float(b) / float(a)) for a, b in pairwise(closes)])
    result = zones.volatility("X")
    assert result is not None
    assert math.isclose(result, expected, rel_tol=1e-9)


def test_a_flat_market_ranks_at_the_top() -> None:
    # Documented quirk of "<=": every volatility is 0, so each ties with the whole history.
    zones = classify([Decimal(100)] * 40, SMALL)
    assert zones[-1] == Zone.Z5


def test_symbols_are_independent() -> None:
    closes, _, _ = _calm_burst_calm()
    reversed_closes = closes[::-1]
    together = VolatilityZones(SMALL)
    mixed_a, mixed_b = [], []
    for a, b in zip(closes, reversed_closes, strict=True):
        mixed_a.append(together.update("A", a))
        mixed_b.append(together.update("B", b))
    assert mixed_a == classify(closes, SMALL)
    assert mixed_b == classify(reversed_closes, SMALL)


def test_deterministic() -> None:
    closes = [c.close for c in load_sample("XRP_USDT_PERP-5m.csv").candles]
    first = VolatilityZones()
    second = VolatilityZones()
    for close in closes:
        assert first.update("XRP", close) == second.update("XRP", close)
        assert first.volatility("XRP") == second.volatility("XRP")  # bit for bit
        assert first.percentile("XRP") == second.percentile("XRP")
    assert classify(closes) == classify(closes)


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "shown"),
    [
        ({"window": 1}, "window", "1"),
        ({"window": 0}, "window", "0"),
        ({"window": True}, "window", "True"),
        ({"window": 2.5}, "window", "2.5"),
        ({"min_history": 1, "lookback": 10}, "min_history", "1"),
        ({"lookback": 50, "min_history": 60}, "lookback", "50"),
        ({"cuts": (25, 50, 75)}, "cuts", "(25, 50, 75)"),
        ({"cuts": (25, 50, 50, 90)}, "cuts", "(25, 50, 50, 90)"),
        ({"cuts": (50, 25, 75, 90)}, "cuts", "(50, 25, 75, 90)"),
        ({"cuts": (0, 50, 75, 90)}, "cuts", "0"),
        ({"cuts": (25, 50, 75, 100)}, "cuts", "100"),
        ({"cuts": (25, 50, 75, math.nan)}, "cuts", "nan"),
        ({"cuts": (25, 50, 75, "90")}, "cuts", "'90'"),
        ({"cuts": [25, 50, 75, 90]}, "cuts", "[25, 50, 75, 90]"),
    ],
)
def test_invalid_config_names_the_field_and_value(
    kwargs: dict[str, Any], field: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        ZoneConfig(**kwargs)
    assert f"ZoneConfig.{field} " in raised.value.message
    assert shown in raised.value.message


def test_valid_configs() -> None:
    assert ZoneConfig() == ZoneConfig(window=20, lookback=500, min_history=100)
    ZoneConfig(window=2, lookback=2, min_history=2, cuts=(0.5, 1, 99, 99.5))


@pytest.mark.parametrize(
    "bad",
    [
        Decimal(0),
        Decimal("-0"),
        Decimal(-3),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        Decimal("1E-400"),  # positive, but 0 as a float
        Decimal("1E+400"),  # finite, but infinite as a float
        1.25,
    ],
)
def test_a_bad_close_raises_and_changes_nothing(bad: Any) -> None:
    closes, _, _ = _calm_burst_calm()
    clean = classify(closes, SMALL)
    zones = VolatilityZones(SMALL)
    seen = []
    for index, close in enumerate(closes):
        if index in (0, 3, 40, 65):  # first close, warm-up, classified, mid-burst
            before = (zones.zone("ETH/BTC"), zones.volatility("ETH/BTC"))
            before_percentile = zones.percentile("ETH/BTC")
            with pytest.raises(MarketDataError) as raised:
                zones.update("ETH/BTC", bad)
            assert "ETH/BTC" in raised.value.message
            assert str(bad) in raised.value.message or type(bad).__name__ in raised.value.message
            assert (zones.zone("ETH/BTC"), zones.volatility("ETH/BTC")) == before
            assert zones.percentile("ETH/BTC") == before_percentile
        seen.append(zones.update("ETH/BTC", close))
    # The refused closes left no trace: the run equals one that never saw them.
    assert seen == clean
    with pytest.raises(MarketDataError):
        zones.update("new symbol", bad)
    assert zones.volatility("new symbol") is None


# -- brute-force reference -------------------------------------------------------------------------


def _reference_zone(percentile: float, cuts: tuple[float, float, float, float]) -> Zone:
    for cut, zone in zip(cuts, (Zone.Z1, Zone.Z2, Zone.Z3, Zone.Z4), strict=True):
        if percentile <= cut:
            return zone
    return Zone.Z5


@st.composite
def _configs(draw: st.DrawFn) -> ZoneConfig:
    min_history = draw(st.integers(min_value=2, max_value=6))
    return ZoneConfig(
        window=draw(st.integers(min_value=2, max_value=4)),
        lookback=draw(st.integers(min_value=min_history, max_value=10)),
        min_history=min_history,
    )


# A few repeated prices make ties (and zero returns) common; the range makes them rare.
_closes = st.lists(
    st.one_of(
        st.sampled_from([Decimal(1), Decimal(2), Decimal("1.5"), Decimal(4)]),
        st.decimals(min_value="0.01", max_value=1000, places=2),
    ),
    max_size=60,
)


@given(_configs(), _closes)
def test_percentile_matches_brute_force(config: ZoneConfig, closes: list[Decimal]) -> None:
    zones = VolatilityZones(config)
    volatilities: list[float] = []
    for close in closes:
        zone = zones.update("S", close)
        volatility = zones.volatility("S")
        if volatility is None:
            assert zone is None
            continue
        volatilities.append(volatility)
        history = volatilities[-config.lookback :]
        if len(history) < config.min_history:
            assert zone is None
            assert zones.percentile("S") is None
            continue
        current = history[-1]
        expected = 100 * sum(1 for v in history if v <= current) / len(history)
        assert zones.percentile("S") == expected
        assert zone == _reference_zone(expected, config.cuts)


@given(_configs(), _closes, st.lists(st.booleans(), min_size=60, max_size=60))
def test_deferred_closes_give_the_zones_of_eager_ones(
    config: ZoneConfig, closes: list[Decimal], asks: list[bool]
) -> None:
    """`add` defers the work (and after lookback + window closes starts over from the last
    ones): whenever a zone is asked for, it is bit for bit what `update` gave."""
    eager, lazy = VolatilityZones(config), VolatilityZones(config)
    for close, ask in zip(closes, asks, strict=False):
        zone = eager.update("S", close)
        lazy.add("S", close)
        if ask:
            assert lazy.zone("S") == zone
            assert lazy.percentile("S") == eager.percentile("S")
            assert lazy.volatility("S") == eager.volatility("S")
    assert lazy.zone("S") == eager.zone("S")
    assert lazy.percentile("S") == eager.percentile("S")


@given(st.integers(min_value=2, max_value=6), _closes)
def test_volatility_matches_statistics_stdev(window: int, closes: list[Decimal]) -> None:
    zones = VolatilityZones(ZoneConfig(window=window, lookback=10, min_history=2))
    returns: list[float] = []
    for previous, close in zip([None, *closes], closes, strict=False):
        zones.update("S", close)
        if previous is not None:
            returns.append(math.log(float(close) / float(previous)))
        if len(returns) < window:
            assert zones.volatility("S") is None
            continue
        result = zones.volatility("S")
        assert result is not None
        assert math.isclose(result, statistics.stdev(returns[-window:]), abs_tol=1e-12)


# -- the bundled real candles ----------------------------------------------------------------------


def test_zone_shares_on_real_candles_follow_the_cut_points() -> None:
    closes = [c.close for c in load_sample("ETH_BTC-5m.csv").candles]
    assert len(closes) == 5760
    zones = classify(closes)
    config = ZoneConfig()
    unknown = config.window + config.min_history - 1
    assert zones[:unknown] == [None] * unknown
    counts = Counter(zones[unknown:])
    assert None not in counts
    assert set(counts) == set(Zone)
    total = len(closes) - unknown
    share = {zone: counts[zone] / total for zone in Zone}
    # Cut points (25, 50, 75, 90) imply shares 25 / 25 / 25 / 15 / 10 % on a long series; real
    # volatility clusters and drifts, so allow a margin around each.
    assert 0.05 <= share[Zone.Z5] <= 0.15
    assert 0.08 <= share[Zone.Z4] <= 0.22
    for zone in (Zone.Z1, Zone.Z2, Zone.Z3):
        assert 0.15 <= share[zone] <= 0.40
