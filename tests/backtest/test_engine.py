"""The backtest engine in-process, on real bundled candles: the SMA example's trades match a
hand computation, the same run gives the same results, and the numbers it reports are the risk
engine's (breakers trip in a backtest as they would on paper)."""

from __future__ import annotations

import shutil
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from tradeguard.backtest import Recorder, run_backtest
from tradeguard.marketdata.candles import Candle
from tradeguard.marketdata.sample import load_sample
from tradeguard.risk.limits import BotLimits, Breakers
from tradeguard.risk.metrics import max_drawdown, record_of
from tradeguard.venues.paper.config import PaperConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sma_cross"
WINDOW = 200
NO_COSTS = PaperConfig(maker_fee_bps=Decimal(0), taker_fee_bps=Decimal(0), slippage_bps=Decimal(0))
QUIET = Breakers(max_consecutive_losses=None, max_daily_loss_pct=None, max_drawdown_pct=None)

# Worked out by hand (with exact fractions, see `_crosses`) on the first 200 candles of the
# bundled ETH_BTC-5m.csv, SMA 3/8: (entry candle, exit candle, entry open, exit open). Every
# fill is at the open of the candle after the cross.
EXPECTED = [
    (17, 23, "0.09695997", "0.0966"),
    (35, 38, "0.09499999", "0.09310905"),
    (44, 53, "0.094", "0.09549"),
    (63, 69, "0.09299999", "0.09185814"),
    (74, 80, "0.09274859", "0.09290001"),
    (81, 89, "0.09369", "0.0954"),
    (91, 95, "0.09629999", "0.09519048"),
    (100, 107, "0.0958", "0.09599"),
    (109, 117, "0.09596998", "0.09594"),
    (123, 126, "0.09589", "0.09501003"),
    (147, 155, "0.09181078", "0.0914001"),
    (172, 176, "0.08901", "0.0888409"),
    (179, 187, "0.08951111", "0.08997548"),
    (194, 199, "0.09014151", "0.08995995"),
]


def _crosses(candles: list[Candle], fast: int, slow: int) -> list[tuple[int, int]]:
    """The rule of examples/sma_cross, written plainly with fractions."""
    closes = [Fraction(c.close) for c in candles]
    trades, was, entry = [], None, None
    for i in range(slow - 1, len(closes)):
        above = sum(closes[i - fast + 1 : i + 1]) / fast > sum(closes[i - slow + 1 : i + 1]) / slow
        if was is not None and above != was and i + 1 < len(closes):
            if above and entry is None:
                entry = i + 1
            elif not above and entry is not None:
                trades.append((entry, i + 1))
                entry = None
        was = above
    return trades


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    return list(load_sample("ETH_BTC-5m.csv").candles[:WINDOW])


def _run(
    candles: list[Candle], tmp_path: Path, breakers: Breakers = QUIET, **params: object
) -> Recorder:
    state = tmp_path / f"state-{len(list(tmp_path.iterdir()))}"
    state.mkdir()
    limits = BotLimits(
        capital=Decimal(1),
        symbols=frozenset({"ETH/BTC"}),
        blocked_zones=frozenset(),
        breakers=breakers,
    )
    return run_backtest(
        EXAMPLE,
        candles,
        symbol="ETH/BTC",
        timeframe="5m",
        limits=limits,
        params={"fast": 3, "slow": 8, "fraction": "0.25", **params},
        paper=NO_COSTS,
        state_dir=state,
    )


def test_the_sma_example_trades_as_computed_by_hand(candles: list[Candle], tmp_path: Path) -> None:
    assert _crosses(candles, 3, 8) == [(e, x) for e, x, _, _ in EXPECTED]
    result = _run(candles, tmp_path)

    assert result.error is None
    assert [(t.entry_index, t.exit_index) for t in result.round_trips] == [
        (e, x) for e, x, _, _ in EXPECTED
    ]
    assert len(result.fills) == 2 * len(EXPECTED)
    for trade, (buy, sell) in zip(EXPECTED, zip(result.fills[::2], result.fills[1::2])):  # noqa: B905
        entry, exit_, entry_open, exit_open = trade
        assert (buy.index, buy.side, buy.price) == (entry, "buy", Decimal(entry_open))
        assert (sell.index, sell.side, sell.price) == (exit_, "sell", Decimal(exit_open))
        assert buy.amount == sell.amount
        assert buy.fee == sell.fee == 0
    # No costs: each trade's PnL is the price move times the amount, to the last digit.
    for trade, buy, sell in zip(result.round_trips, result.fills[::2], result.fills[1::2]):  # noqa: B905
        assert trade.pnl == (sell.price - buy.price) * buy.amount


def test_the_same_backtest_gives_the_same_results(candles: list[Candle], tmp_path: Path) -> None:
    first = _run(candles, tmp_path)
    second = _run(candles, tmp_path)
    assert first.round_trips == second.round_trips
    assert first.fills == second.fills
    assert first.equity == second.equity
    assert first.report() == second.report()


def test_the_report_uses_the_risk_metrics(candles: list[Candle], tmp_path: Path) -> None:
    result = _run(candles, tmp_path)
    report = result.report()
    record = record_of([t.pnl for t in result.round_trips])
    assert (report.trades, report.wins, report.losses) == (14, record.wins, record.losses)
    assert report.win_rate_pct == record.win_rate * 100  # type: ignore[operator]
    assert report.profit_factor == record.profit_factor
    assert report.max_drawdown_pct == max_drawdown([Decimal(1), *result.equity]) * 100
    assert report.end_equity == Decimal(1) + record.net  # flat at the end: all of it realized
    assert report.candles == WINDOW


def test_breakers_trip_in_a_backtest_as_on_paper(candles: list[Candle], tmp_path: Path) -> None:
    result = _run(candles, tmp_path, breakers=Breakers(max_consecutive_losses=2))
    [trip] = [e for e in result.risk_events if e[1] == "risk.breaker.tripped"]
    assert trip[2]["breaker"] == "consecutive_losses"
    losses = 0
    for trade in result.round_trips:
        losses = losses + 1 if trade.pnl < 0 else 0
        if losses == 2:
            break
    halted_at = trade.exit_index
    assert trip[0] == halted_at
    assert all(t.entry_index <= halted_at for t in result.round_trips)
    assert result.refusals
    assert {code for _, code, _ in result.refusals} == {"risk.halted"}
    assert result.report().trading_state == "HALTED"


def test_a_bot_that_raises_stops_the_backtest_with_partial_results(
    candles: list[Candle], tmp_path: Path
) -> None:
    folder = tmp_path / "bot"
    shutil.copytree(EXAMPLE, folder)
    code = (folder / "bot.py").read_text()
    bad = code.replace(
        "        closes = self.closes\n",
        "        closes = self.closes\n"
        "        self.seen = getattr(self, 'seen', 0) + 1\n"
        "        if self.seen == 121:\n"
        "            api_key = 'not-a-real-key'  # a local the scrubbed traceback must not show\n"
        "            raise RuntimeError('strategy bug')\n",
    )
    (folder / "bot.py").write_text(bad)
    state = tmp_path / "state"
    state.mkdir()
    limits = BotLimits(capital=Decimal(1), symbols=frozenset({"ETH/BTC"}))
    result = run_backtest(
        folder, candles, symbol="ETH/BTC", timeframe="5m", limits=limits, state_dir=state
    )
    assert result.error is not None
    assert "RuntimeError: strategy bug" in result.error
    assert "not-a-real-key" not in result.error
    assert result.report().candles == 120  # the candle it raised on is not recorded
