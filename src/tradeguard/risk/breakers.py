"""Circuit breakers: the values a bot and a user are held to after every fill and every mark.

Per bot: consecutive losing trades, the day's loss as a percentage of start-of-day equity
(UTC days; start-of-day equity is the bot's last equity of the day before, its capital on its
first day) and the drawdown from its equity peak. Per user: the drawdown of the sum of their
bots' equity. Equity = capital + realized PnL + unrealized PnL at the last marks. Every value
comes from `tradeguard.risk.metrics`, the one definition of each metric.

A breaker trips when its value reaches its limit (`>=`), and warns once when it first reaches
`warn_at_pct` of it. A reset re-bases the meters at the current equity: the loss run starts
again at 0, the day starts at the current equity and the peak is the current equity, so a
person who resets a halted bot decides to accept the losses so far, deliberately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from tradeguard.risk.limits import Breakers
from tradeguard.risk.metrics import EquityPeak, TradeRecord

__all__ = ["BotMeters", "Breaker", "Reading", "UserMeters", "judge"]

HUNDRED = Decimal(100)


class Breaker(StrEnum):
    CONSECUTIVE_LOSSES = "consecutive_losses"
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    PORTFOLIO_DRAWDOWN = "portfolio_drawdown"


@dataclass(frozen=True, slots=True)
class Reading:
    """A breaker's value against its limit (percent for losses and drawdowns)."""

    breaker: Breaker
    value: Decimal
    limit: Decimal

    @property
    def tripped(self) -> bool:
        return self.value >= self.limit

    def describe(self) -> str:
        unit = "" if self.breaker is Breaker.CONSECUTIVE_LOSSES else "%"
        return f"{self.breaker} {self.value:.4g}{unit} (limit {self.limit}{unit})"


def _pct(fraction: Decimal) -> Decimal:
    return fraction * HUNDRED


@dataclass(slots=True)
class BotMeters:
    """One bot's running breaker state."""

    record: TradeRecord = field(default_factory=TradeRecord)
    peak: EquityPeak = field(default_factory=EquityPeak)
    day: date | None = None
    day_start: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)
    warned: set[Breaker] = field(default_factory=set)

    @classmethod
    def starting(cls, capital: Decimal, now: datetime) -> BotMeters:
        meters = cls(day=now.date(), day_start=capital, equity=capital)
        meters.peak.update(capital)
        return meters

    def observe(self, equity: Decimal, now: datetime) -> None:
        today = now.date()
        if self.day != today:
            self.day, self.day_start = today, self.equity
        self.equity = equity
        self.peak.update(equity)

    def daily_loss_pct(self) -> Decimal:
        if self.day_start <= 0:
            return Decimal(0)
        return max(Decimal(0), _pct((self.day_start - self.equity) / self.day_start))

    def readings(self, limits: Breakers) -> list[Reading]:
        readings = []
        if limits.max_consecutive_losses is not None:
            readings.append(
                Reading(
                    Breaker.CONSECUTIVE_LOSSES,
                    Decimal(self.record.consecutive_losses),
                    Decimal(limits.max_consecutive_losses),
                )
            )
        if limits.max_daily_loss_pct is not None:
            readings.append(
                Reading(Breaker.DAILY_LOSS, self.daily_loss_pct(), limits.max_daily_loss_pct)
            )
        if limits.max_drawdown_pct is not None:
            readings.append(
                Reading(Breaker.DRAWDOWN, _pct(self.peak.drawdown), limits.max_drawdown_pct)
            )
        return readings

    def rebase(self, now: datetime) -> None:
        self.record.consecutive_losses = 0
        self.peak = EquityPeak()
        self.peak.update(self.equity)
        self.day, self.day_start = now.date(), self.equity
        self.warned.clear()


@dataclass(slots=True)
class UserMeters:
    peak: EquityPeak = field(default_factory=EquityPeak)
    equity: Decimal = Decimal(0)
    warned: set[Breaker] = field(default_factory=set)

    def observe(self, equity: Decimal) -> None:
        self.equity = equity
        self.peak.update(equity)

    def readings(self, limit_pct: Decimal | None) -> list[Reading]:
        if limit_pct is None:
            return []
        return [Reading(Breaker.PORTFOLIO_DRAWDOWN, _pct(self.peak.drawdown), limit_pct)]

    def rebase(self) -> None:
        self.peak = EquityPeak()
        self.peak.update(self.equity)
        self.warned.clear()


def judge(
    readings: list[Reading], warned: set[Breaker], warn_at_pct: Decimal
) -> tuple[list[Reading], list[Reading]]:
    """(trips, new warnings). A warning is given once per crossing: it is re-armed when the
    value falls back under the warning level."""
    trips, warnings = [], []
    for reading in readings:
        if reading.tripped:
            trips.append(reading)
        elif reading.value >= reading.limit * warn_at_pct / HUNDRED:
            if reading.breaker not in warned:
                warned.add(reading.breaker)
                warnings.append(reading)
        else:
            warned.discard(reading.breaker)
    return trips, warnings
