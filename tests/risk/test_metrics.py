"""The trading metrics: hand-computed examples, edge cases, and the batch functions against the
incremental classes and against brute-force references."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeguard.risk.metrics import (
    EquityPeak,
    TradeRecord,
    daily_pnl,
    drawdowns,
    equity_curve,
    max_drawdown,
    record_of,
    returns_of,
    sharpe,
)

D = Decimal

money = st.decimals(
    min_value=-10_000, max_value=10_000, places=2, allow_nan=False, allow_infinity=False
)
non_negative_equity = st.decimals(
    min_value=0, max_value=1_000_000, places=2, allow_nan=False, allow_infinity=False
)


# -- TradeRecord ---------------------------------------------------------------------------------


def test_trade_record_hand_example() -> None:
    record = record_of([D(10), D(-5), D(0), D(-3), D(-2), D(8), D(-1)])
    assert record.trades == 7
    assert record.wins == 2  # 10, 8
    assert record.losses == 4  # -5, -3, -2, -1; the 0 is neither
    assert record.gross_profit == D(18)  # 10 + 8
    assert record.gross_loss == D(11)  # 5 + 3 + 2 + 1, positive
    assert record.net == D(7)  # 18 - 11
    assert record.win_rate == D(2) / D(7)  # the zero-pnl trade is in the denominator
    assert record.profit_factor == D(18) / D(11)
    # Runs: -5 (1), then 0 resets, then -3 -2 (2), then 8 resets, then -1 (1). Had the zero not
    # reset the run, -5 0 -3 -2 would have been a run of 3.
    assert record.max_consecutive_losses == 2
    assert record.consecutive_losses == 1


def test_trade_record_empty() -> None:
    record = TradeRecord()
    assert (record.trades, record.wins, record.losses) == (0, 0, 0)
    assert record.gross_profit == record.gross_loss == record.net == D(0)
    assert record.win_rate is None
    assert record.profit_factor is None
    assert record.consecutive_losses == record.max_consecutive_losses == 0


def test_all_wins_have_no_profit_factor() -> None:
    record = record_of([D("1.5"), D("2.5")])
    assert record.win_rate == D(1)
    assert record.profit_factor is None  # no loss to divide by: undefined, not infinite
    assert record.net == D(4)


def test_all_losses() -> None:
    record = record_of([D(-1), D(-2), D(-3)])
    assert record.win_rate == D(0)
    assert record.profit_factor == D(0)  # 0 / 6
    assert record.consecutive_losses == record.max_consecutive_losses == 3
    assert record.gross_loss == D(6)


def test_zero_pnl_trades_only() -> None:
    record = record_of([D(0), D("0.00")])
    assert record.trades == 2
    assert record.wins == record.losses == 0
    assert record.win_rate == D(0)
    assert record.profit_factor is None


def test_metrics_ignore_the_callers_decimal_context() -> None:
    reference = record_of([D(1), D(1), D(-1), D(0), D(0), D(0), D(0)]).win_rate
    with localcontext() as ctx:
        ctx.prec = 3
        low_precision = record_of([D(1), D(1), D(-1), D(0), D(0), D(0), D(0)]).win_rate
    assert low_precision == reference == D(2) / D(7)  # 28 digits either way
    assert str(reference).startswith("0.2857142857142857142857")


@pytest.mark.parametrize("bad", [1.5, 1, "1", None])
def test_add_refuses_non_decimals(bad: object) -> None:
    with pytest.raises(TypeError, match="pnl must be a Decimal"):
        TradeRecord().add(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [D("NaN"), D("Infinity"), D("-Infinity"), D("sNaN")])
def test_add_refuses_non_finite(bad: Decimal) -> None:
    record = TradeRecord()
    with pytest.raises(ValueError, match="finite"):
        record.add(bad)
    assert record.trades == 0


def _runs_of_losses(pnls: list[Decimal]) -> list[int]:
    runs = [0]
    for pnl in pnls:
        runs.append(runs[-1] + 1 if pnl < 0 else 0)
    return runs


@given(st.lists(money, max_size=60))
def test_record_of_matches_incremental_and_direct_counts(pnls: list[Decimal]) -> None:
    batch = record_of(pnls)
    incremental = TradeRecord()
    for pnl in pnls:
        incremental.add(pnl)
    assert batch == incremental
    # Independent of the class: counted straight from the list (two places, small: exact sums).
    assert batch.trades == len(pnls)
    assert batch.wins == sum(1 for p in pnls if p > 0)
    assert batch.losses == sum(1 for p in pnls if p < 0)
    assert batch.gross_profit == sum((p for p in pnls if p > 0), D(0))
    assert batch.gross_loss == -sum((p for p in pnls if p < 0), D(0))
    assert batch.net == sum(pnls, D(0))
    runs = _runs_of_losses(pnls)
    assert batch.consecutive_losses == runs[-1]
    assert batch.max_consecutive_losses == max(runs)


# -- EquityPeak and drawdowns ----------------------------------------------------------------------


def test_equity_peak_hand_example() -> None:
    peak = EquityPeak()
    assert peak.peak is None
    assert peak.update(D(100)) == 0  # the first value is the peak
    assert peak.update(D(120)) == 0  # a new peak
    assert peak.update(D(90)) == D("0.25")  # (120 - 90) / 120
    assert peak.update(D(130)) == 0
    assert peak.update(D(65)) == D("0.5")  # (130 - 65) / 130
    assert peak.update(D(0)) == D(1)  # everything lost
    assert peak.update(D(-13)) == D("1.1")  # (130 + 13) / 130: more than everything
    assert peak.peak == D(130)
    assert peak.max_drawdown == D("1.1")
    assert peak.drawdown == D("1.1")


def test_recovery_keeps_the_max_drawdown() -> None:
    peak = EquityPeak()
    for equity in (D(200), D(150), D(190)):
        peak.update(equity)
    assert peak.drawdown == D("0.05")  # (200 - 190) / 200
    assert peak.max_drawdown == D("0.25")  # (200 - 150) / 200


def test_non_positive_peak_means_no_drawdown() -> None:
    # [0, -5]: the peak is 0, no capital, so no fraction; then 3 is a real peak.
    assert drawdowns([D(0), D(-5), D(3), D(1)]) == [D(0), D(0), D(0), D(2) / D(3)]
    assert drawdowns([D(-10), D(-5), D(-8)]) == [D(0), D(0), D(0)]


def test_max_drawdown_of_nothing_is_zero() -> None:
    assert max_drawdown([]) == 0
    assert drawdowns([]) == []
    assert max_drawdown([D(5)]) == 0


def _brute_max_drawdown(curve: list[Decimal]) -> Decimal:
    # O(n^2): the worst fall from any earlier positive point to any later point.
    worst = D(0)
    for i in range(len(curve)):
        if curve[i] <= 0:
            continue
        for j in range(i + 1, len(curve)):
            worst = max(worst, (curve[i] - curve[j]) / curve[i])
    return worst


@given(st.lists(non_negative_equity, max_size=40))
def test_max_drawdown_matches_brute_force(curve: list[Decimal]) -> None:
    assert max_drawdown(curve) == _brute_max_drawdown(curve)
    # And each point's drawdown is the brute force over the prefix ending there (from the peak).
    per_point = drawdowns(curve)
    assert len(per_point) == len(curve)
    for j in range(len(curve)):
        prefix_peak = max(curve[: j + 1])
        expected = D(0) if prefix_peak <= 0 else (prefix_peak - curve[j]) / prefix_peak
        assert per_point[j] == expected


@given(st.lists(non_negative_equity, max_size=40))
def test_drawdowns_match_incremental(curve: list[Decimal]) -> None:
    peak = EquityPeak()
    assert drawdowns(curve) == [peak.update(e) for e in curve]
    assert max_drawdown(curve) == peak.max_drawdown


# -- equity curve and returns ----------------------------------------------------------------------


def test_equity_curve_hand_example() -> None:
    # 1000, 1000 + 10, 1010 - 5, 1005 + 0
    assert equity_curve(D(1000), [D(10), D(-5), D(0)]) == [D(1000), D(1010), D(1005), D(1005)]
    assert equity_curve(D(7), []) == [D(7)]


@given(money, st.lists(money, max_size=40))
def test_equity_curve_is_start_plus_cumulative_pnl(start: Decimal, pnls: list[Decimal]) -> None:
    curve = equity_curve(start, pnls)
    assert len(curve) == len(pnls) + 1
    for k, point in enumerate(curve):
        assert point == start + sum(pnls[:k], D(0))
    assert curve[-1] - curve[0] == record_of(pnls).net


def test_equity_curve_names_a_bad_pnl() -> None:
    with pytest.raises(ValueError, match=r"pnls\[1\]"):
        equity_curve(D(100), [D(1), D("NaN")])


def test_returns_hand_example() -> None:
    # 100 -> 110: +10 / 100 = 0.1; 110 -> 99: -11 / 110 = -0.1
    assert returns_of([D(100), D(110), D(99)]) == [D("0.1"), D("-0.1")]
    assert returns_of([D(100)]) == []
    assert returns_of([]) == []


@pytest.mark.parametrize("wiped", [D(0), D(-20)])
def test_returns_refuse_non_positive_equity_and_name_the_index(wiped: Decimal) -> None:
    with pytest.raises(ValueError, match=r"curve\[2\]"):
        returns_of([D(100), D(50), wiped, D(10)])
    # The last point may be anything: no return is computed from it.
    assert returns_of([D(100), wiped])[0] == (wiped - 100) / 100


# -- daily PnL -------------------------------------------------------------------------------------


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def test_daily_pnl_hand_example() -> None:
    points = [
        (_utc(1, 9), D(1000)),
        (_utc(1, 15), D(1010)),
        (_utc(1, 23, 59), D(1020)),  # day 1: 1020 - 1000 (its own first point) = 20
        (_utc(2, 0), D(1015)),
        (_utc(2, 12), D(990)),  # day 2: 990 - 1020 (day 1's last) = -30
        # no data on day 3: no entry
        (_utc(4, 8), D(1000)),  # day 4: 1000 - 990 = 10
        # 23:30 at UTC-5 is 04:30 UTC on day 5: 1005 - 1000 = 5
        (datetime(2026, 1, 4, 23, 30, tzinfo=timezone(timedelta(hours=-5))), D(1005)),
    ]
    result = daily_pnl(points)
    assert result == {
        date(2026, 1, 1): D(20),
        date(2026, 1, 2): D(-30),
        date(2026, 1, 4): D(10),
        date(2026, 1, 5): D(5),
    }
    assert list(result) == sorted(result)


def test_daily_pnl_single_point_and_empty() -> None:
    assert daily_pnl([]) == {}
    assert daily_pnl([(_utc(1, 9), D(500))]) == {date(2026, 1, 1): D(0)}


def test_daily_pnl_equal_times_are_allowed_and_the_later_counts() -> None:
    points = [(_utc(1, 9), D(100)), (_utc(1, 9), D(104))]
    assert daily_pnl(points) == {date(2026, 1, 1): D(4)}


def test_daily_pnl_refuses_naive_times() -> None:
    points = [(_utc(1, 9), D(100)), (datetime(2026, 1, 1, 10), D(101))]
    with pytest.raises(ValueError, match=r"points\[1\].*naive"):
        daily_pnl(points)


def test_daily_pnl_refuses_out_of_order_points() -> None:
    points = [(_utc(1, 9), D(100)), (_utc(2, 9), D(101)), (_utc(1, 23), D(99))]
    with pytest.raises(ValueError, match=r"points\[2\].*before the previous point"):
        daily_pnl(points)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10 * 24 * 60), non_negative_equity),
        min_size=1,
        max_size=40,
    )
)
def test_daily_pnl_sums_to_the_total_change(minutes_and_equity: list[tuple[int, Decimal]]) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    points = [
        (start + timedelta(minutes=m), equity)
        for m, equity in sorted(minutes_and_equity, key=lambda p: p[0])
    ]
    result = daily_pnl(points)
    # The days telescope: the sum is the last equity minus the very first one.
    assert sum(result.values(), D(0)) == points[-1][1] - points[0][1]
    assert set(result) == {at.date() for at, _ in points}


# -- Sharpe ----------------------------------------------------------------------------------------


def test_sharpe_hand_example_exact() -> None:
    # mean 0.02; deviations +-0.01; sample variance (0.0001 + 0.0001) / 1 = 0.0002;
    # stdev 0.01 * sqrt(2); mean / stdev = sqrt(2); times sqrt(8) = sqrt(16) = 4.
    result = sharpe([D("0.01"), D("0.03")], periods_per_year=8)
    assert result is not None
    assert abs(result - 4) < D("1e-25")


def test_sharpe_hand_example() -> None:
    returns = [D("0.01"), D("0.02"), D("-0.01"), D("0.03")]
    # mean = 0.05 / 4 = 0.0125; deviations -0.0025, 0.0075, -0.0225, 0.0175;
    # squares sum to 0.00000625 + 0.00005625 + 0.00050625 + 0.00030625 = 0.000875;
    # variance = 0.000875 / 3; sharpe = 0.0125 / sqrt(0.000875 / 3) * sqrt(252)
    #        = 0.0125 * sqrt(3 * 252 / 0.000875) = 0.0125 * sqrt(864000) ~ 11.6190
    expected = D("0.0125") * D(864000).sqrt()
    result = sharpe(returns, periods_per_year=252)
    assert result is not None
    assert abs(result - expected) < D("1e-24")
    assert D("11.61") < result < D("11.62")


def test_sharpe_is_undefined_without_variation_or_data() -> None:
    assert sharpe([], 252) is None
    assert sharpe([D("0.01")], 252) is None
    assert sharpe([D("0.01")] * 5, 252) is None


def test_sharpe_of_losses_is_negative() -> None:
    result = sharpe([D("-0.01"), D("-0.03")], 8)
    assert result is not None
    assert abs(result + 4) < D("1e-25")


def test_sharpe_refuses_bad_periods() -> None:
    with pytest.raises(ValueError, match="periods_per_year"):
        sharpe([D("0.01"), D("0.02")], 0)
    with pytest.raises(TypeError, match="periods_per_year"):
        sharpe([D("0.01"), D("0.02")], 252.0)  # type: ignore[arg-type]


@given(
    st.lists(
        st.decimals(min_value=-1, max_value=1, places=4, allow_nan=False, allow_infinity=False),
        min_size=2,
        max_size=30,
    ),
    st.integers(min_value=1, max_value=100_000),
)
def test_sharpe_matches_the_statistics_module(returns: list[Decimal], periods: int) -> None:
    result = sharpe(returns, periods)
    spread = statistics.stdev(returns)
    if spread == 0:
        assert result is None
        return
    assert result is not None
    expected = statistics.mean(returns) / spread * D(periods).sqrt()
    assert abs(result - expected) <= abs(expected) * D("1e-20") + D("1e-24")


def test_sharpe_on_an_equity_curve() -> None:
    # 100 -> 110 -> 99 -> 108.9: returns 0.1, -0.1, 0.1; mean 1/30; sample variance
    # ((2/30)^2 * 2 + (4/30)^2) / 2 = (8/900 + 16/900) / 2 = 12/900; stdev = sqrt(12)/30;
    # ratio = (1/30) / (sqrt(12)/30) = 1 / sqrt(12); times sqrt(12) periods = 1.
    result = sharpe(returns_of([D(100), D(110), D(99), D("108.9")]), periods_per_year=12)
    assert result is not None
    assert abs(result - 1) < D("1e-25")
