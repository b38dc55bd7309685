"""The promotion gate: a bot trades live only after its paper record shows it should.

The record is computed from the bot's closed paper trades with the same metrics the breakers
and backtest reports use: the number of trades, the win rate, the profit factor, and the
maximum drawdown of the closed-trade equity curve (capital, then capital plus the cumulative
PnL after each trade). A record without a losing trade has no profit factor (undefined, not
infinite); the gate counts that as passing only when the record made money.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradeguard.risk.limits import PromotionThresholds
from tradeguard.risk.metrics import equity_curve, max_drawdown, record_of

__all__ = ["PaperRecord", "Verdict", "judge", "paper_record"]

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class PaperRecord:
    trades: int
    win_rate_pct: Decimal | None
    profit_factor: Decimal | None
    max_drawdown_pct: Decimal
    net: Decimal


@dataclass(frozen=True, slots=True)
class Verdict:
    record: PaperRecord
    thresholds: PromotionThresholds
    failures: tuple[str, ...]  # one line per unmet threshold, naming it and the value

    @property
    def passed(self) -> bool:
        return not self.failures


def paper_record(pnls: Sequence[Decimal], capital: Decimal) -> PaperRecord:
    record = record_of(pnls)
    win_rate = record.win_rate
    return PaperRecord(
        trades=record.trades,
        win_rate_pct=None if win_rate is None else win_rate * HUNDRED,
        profit_factor=record.profit_factor,
        max_drawdown_pct=max_drawdown(equity_curve(capital, pnls)) * HUNDRED,
        net=record.net,
    )


def judge(record: PaperRecord, thresholds: PromotionThresholds) -> Verdict:
    failures = []
    if record.trades < thresholds.min_trades:
        failures.append(
            f"closed paper trades: {record.trades}, needs at least {thresholds.min_trades}"
        )
    rate = record.win_rate_pct
    if rate is None or rate < thresholds.min_win_rate_pct:
        shown = "none" if rate is None else f"{rate:.2f}%"
        failures.append(f"win rate: {shown}, needs at least {thresholds.min_win_rate_pct}%")
    factor = record.profit_factor
    if factor is None and record.net <= 0:
        failures.append(
            f"profit factor: undefined without profit, needs at least "
            f"{thresholds.min_profit_factor}"
        )
    elif factor is not None and factor < thresholds.min_profit_factor:
        failures.append(
            f"profit factor: {factor:.3f}, needs at least {thresholds.min_profit_factor}"
        )
    if record.max_drawdown_pct > thresholds.max_drawdown_pct:
        failures.append(
            f"max drawdown: {record.max_drawdown_pct:.2f}%, needs at most "
            f"{thresholds.max_drawdown_pct}%"
        )
    return Verdict(record, thresholds, tuple(failures))
