"""Trading metrics, defined once: circuit breakers, the promotion gate, backtest reports and the
dashboard all compute them here, so a number means the same thing everywhere.

Money is `Decimal` throughout. Every division, square root and sum runs in one fixed decimal
context (28 significant digits, round-half-even), whatever context the caller has set, so the
same inputs give the same digits in every process.

Definitions (a trade's `pnl` is its realized profit or loss after fees):

- trades: the number of closed trades recorded. wins: trades with pnl > 0. losses: trades with
  pnl < 0. A trade with pnl == 0 counts as a trade but as neither a win nor a loss.
- gross_profit = sum of pnl over wins; gross_loss = -(sum of pnl over losses), so it is >= 0.
  net = gross_profit - gross_loss (the sum of all pnl).
- win_rate = wins / trades; None when trades == 0. Zero-pnl trades count in the denominator.
- profit_factor = gross_profit / gross_loss; None when gross_loss == 0 (no losing trade). None
  is "undefined", not "infinite": each caller decides what undefined means for it.
- consecutive_losses: the length of the current trailing run of losses. A win or a zero-pnl
  trade ends the run (resets it to 0): a breakeven trade is not a loss. max_consecutive_losses
  is the longest such run so far.
- drawdown at point t = (peak_t - equity_t) / peak_t, where peak_t = max(equity_0 .. equity_t)
  is the running peak (it starts at the first value). It is 0 at a new peak, and defined as 0
  while peak_t <= 0: with no capital there is nothing to lose a fraction of. It exceeds 1 when
  equity falls below zero. max_drawdown = max over t of drawdown at t (0 for an empty curve).
- equity_curve(start, pnls) = [start, start + pnl_1, start + pnl_1 + pnl_2, ...].
- returns_of(curve)[i] = (curve[i+1] - curve[i]) / curve[i], the simple return from point i to
  point i+1; a point i with curve[i] <= 0 (not the last) is an error, not a skipped point.
- daily_pnl: for each UTC calendar day with data, the last equity of that day minus the last
  equity of the previous day with data; for the first day, its last equity minus its first.
  Days without data have no entry (they are not 0).
- sharpe(returns, periods_per_year) = mean(returns) / stdev(returns) * sqrt(periods_per_year),
  stdev being the sample standard deviation (divisor n - 1); None when there are fewer than two
  returns or the stdev is 0. No risk-free rate is subtracted.

The batch functions are built on the incremental classes (`TradeRecord`, `EquityPeak`), so a
live breaker fed one trade at a time and a backtest report over the whole list agree exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

__all__ = [
    "EquityPeak",
    "TradeRecord",
    "daily_pnl",
    "drawdowns",
    "equity_curve",
    "max_drawdown",
    "record_of",
    "returns_of",
    "sharpe",
]

# Fixed, not the thread's current context: a caller that lowered the precision for display
# must not change what a breaker sees.
_CONTEXT = Context(
    prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_ZERO = Decimal(0)


def _money(value: object, what: str) -> Decimal:
    """`value` if it is a finite Decimal; otherwise a TypeError or ValueError naming `what`."""
    # A float would carry binary rounding into every sum; refuse it rather than convert it.
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


@dataclass(slots=True)
class TradeRecord:
    """Closed-trade statistics, fed one trade at a time with `add` (see the module docstring
    for each definition). Construct it empty: `TradeRecord()`."""

    trades: int = field(default=0, init=False)
    wins: int = field(default=0, init=False)
    losses: int = field(default=0, init=False)
    gross_profit: Decimal = field(default=_ZERO, init=False)
    gross_loss: Decimal = field(default=_ZERO, init=False)
    consecutive_losses: int = field(default=0, init=False)
    max_consecutive_losses: int = field(default=0, init=False)

    def add(self, pnl: Decimal) -> None:
        """Record one closed trade's realized profit (> 0) or loss (< 0)."""
        _money(pnl, "pnl")
        with localcontext(_CONTEXT):
            self.trades += 1
            if pnl > 0:
                self.wins += 1
                self.gross_profit += pnl
                self.consecutive_losses = 0
            elif pnl < 0:
                self.losses += 1
                self.gross_loss -= pnl
                self.consecutive_losses += 1
                self.max_consecutive_losses = max(
                    self.max_consecutive_losses, self.consecutive_losses
                )
            else:
                # Breakeven: a trade, but it neither wins nor extends a losing streak.
                self.consecutive_losses = 0

    @property
    def net(self) -> Decimal:
        with localcontext(_CONTEXT):
            return self.gross_profit - self.gross_loss

    @property
    def win_rate(self) -> Decimal | None:
        if self.trades == 0:
            return None
        with localcontext(_CONTEXT):
            return Decimal(self.wins) / Decimal(self.trades)

    @property
    def profit_factor(self) -> Decimal | None:
        if self.gross_loss == 0:
            return None
        with localcontext(_CONTEXT):
            return self.gross_profit / self.gross_loss


@dataclass(slots=True)
class EquityPeak:
    """Drawdown from the running peak, fed one equity value at a time with `update`.

    `peak` is None until the first update; `drawdown` is the latest value and `max_drawdown`
    the largest seen, both fractions (0.25 = 25 % below the peak).
    """

    peak: Decimal | None = field(default=None, init=False)
    drawdown: Decimal = field(default=_ZERO, init=False)
    max_drawdown: Decimal = field(default=_ZERO, init=False)

    def update(self, equity: Decimal) -> Decimal:
        """Record the next equity value and return the drawdown from the peak at this point."""
        _money(equity, "equity")
        if self.peak is None or equity > self.peak:
            self.peak = equity
        if self.peak <= 0:
            # No capital at the peak: a fraction of nothing is undefined, and calling it 0
            # keeps a breaker from tripping on an account that never held money.
            current = _ZERO
        else:
            with localcontext(_CONTEXT):
                current = (self.peak - equity) / self.peak
        self.drawdown = current
        self.max_drawdown = max(self.max_drawdown, current)
        return current


def record_of(pnls: Iterable[Decimal]) -> TradeRecord:
    """A `TradeRecord` of these closed-trade PnLs, in order."""
    record = TradeRecord()
    for pnl in pnls:
        record.add(pnl)
    return record


def equity_curve(start: Decimal, pnls: Iterable[Decimal]) -> list[Decimal]:
    """`[start, start + pnl_1, start + pnl_1 + pnl_2, ...]`: one point more than trades."""
    equity = _money(start, "start")
    curve = [equity]
    with localcontext(_CONTEXT):
        for index, pnl in enumerate(pnls):
            equity += _money(pnl, f"pnls[{index}]")
            curve.append(equity)
    return curve


def drawdowns(curve: Iterable[Decimal]) -> list[Decimal]:
    """The drawdown from the running peak at each point of an equity curve."""
    peak = EquityPeak()
    return [peak.update(equity) for equity in curve]


def max_drawdown(curve: Iterable[Decimal]) -> Decimal:
    """The largest drawdown from the running peak over an equity curve (0 when empty)."""
    peak = EquityPeak()
    for equity in curve:
        peak.update(equity)
    return peak.max_drawdown


def returns_of(curve: Sequence[Decimal]) -> list[Decimal]:
    """Simple returns between consecutive points of an equity curve (one fewer than points)."""
    returns: list[Decimal] = []
    with localcontext(_CONTEXT):
        for index in range(1, len(curve)):
            before = _money(curve[index - 1], f"curve[{index - 1}]")
            after = _money(curve[index], f"curve[{index}]")
            # Skipping the point would hide a wiped-out account from a Sharpe ratio; and a
            # return on negative equity has the wrong sign (a recovery would read as a loss).
            if before <= 0:
                raise ValueError(
                    f"curve[{index - 1}] is {before}: a return needs positive equity before it"
                )
            returns.append((after - before) / before)
    return returns


def daily_pnl(points: Iterable[tuple[datetime, Decimal]]) -> dict[date, Decimal]:
    """PnL per UTC calendar day from (aware time, equity) points, oldest first.

    Points in another time zone are converted to UTC. Equal times are allowed (the later point
    counts as later); a naive time or a time before the previous point raises ValueError naming
    its index. The result is ordered by day and has no entry for days without data.
    """
    result: dict[date, Decimal] = {}
    previous_at: datetime | None = None
    day: date | None = None
    day_base = _ZERO  # the equity the current day's PnL is measured from
    day_last = _ZERO
    with localcontext(_CONTEXT):
        for index, (at, equity) in enumerate(points):
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError(f"points[{index}] has a naive time {at.isoformat()}; use UTC")
            _money(equity, f"points[{index}] equity")
            if previous_at is not None and at < previous_at:
                raise ValueError(
                    f"points[{index}] at {at.isoformat()} is before the previous point at "
                    f"{previous_at.isoformat()}; points must be oldest first"
                )
            previous_at = at
            today = at.astimezone(UTC).date()
            if day is None:
                day_base = equity  # the first day: measured from its own first point
            elif today != day:
                day_base = day_last
            day = today
            day_last = equity
            result[day] = day_last - day_base
    return result


def sharpe(returns: Sequence[Decimal], periods_per_year: int) -> Decimal | None:
    """Annualized Sharpe ratio (no risk-free rate) of per-period returns; see the module
    docstring. None with fewer than two returns or no variation."""
    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, int):
        raise TypeError("periods_per_year must be an int")
    if periods_per_year < 1:
        raise ValueError(f"periods_per_year must be at least 1, got {periods_per_year}")
    values = [_money(r, f"returns[{i}]") for i, r in enumerate(returns)]
    if len(values) < 2:
        return None
    with localcontext(_CONTEXT):
        count = Decimal(len(values))
        mean = sum(values, _ZERO) / count
        variance = sum(((r - mean) ** 2 for r in values), _ZERO) / (count - 1)
        if variance == 0:
            return None
        return mean / variance.sqrt() * Decimal(periods_per_year).sqrt()
