"""Backtests: a bot class over stored candles on a simulated clock, through the same SDK,
gateway checks, risk engine and paper venue as paper trading (see `engine`)."""

from tradeguard.backtest.engine import Backtest, BacktestSpec, Progress, run_backtest
from tradeguard.backtest.record import FillRow, Recorder, Report, RoundTrip

__all__ = [
    "Backtest",
    "BacktestSpec",
    "FillRow",
    "Progress",
    "Recorder",
    "Report",
    "RoundTrip",
    "run_backtest",
]
