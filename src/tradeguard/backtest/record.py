"""What a backtest records while it runs, and the report it makes of it at the end.

Every figure comes from `risk.metrics` (win rate, profit factor, drawdown, Sharpe), the code the
circuit breakers and the promotion gate use, and the closed trades are the risk engine's own
(`BotBook.apply_fill`), so a backtest, a breaker and the promotion gate cannot disagree on what
a trade or a drawdown is.

Definitions beyond `risk.metrics`:
- equity at a candle: the bot's equity in the risk engine after the candle (cash plus positions
  marked at the close), in the quote currency;
- max drawdown: over the equity of every candle (marked, so deeper than the promotion gate's,
  which is over closed trades only; both are reported);
- Sharpe: over daily returns (the last equity of each UTC day, the starting capital before the
  first), annualized with 365 periods (crypto trades every day), no risk-free rate.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tradeguard.core.events import DomainEvent
from tradeguard.risk.book import BotBook, ClosedTrade
from tradeguard.risk.limits import PromotionThresholds
from tradeguard.risk.metrics import max_drawdown, record_of, returns_of, sharpe
from tradeguard.risk.promotion import judge, paper_record

__all__ = ["FillRow", "Recorder", "Report", "RoundTrip"]

_DAY_MS = 86_400_000
_HUNDRED = Decimal(100)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class FillRow:
    index: int  # the candle whose processing filled it
    ts_ms: int
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A closed trade: opened by the fill at candle `entry_index`, closed at `exit_index`."""

    entry_index: int
    exit_index: int
    opened_ms: int
    closed_ms: int
    pnl: Decimal


@dataclass(frozen=True)
class Report:
    candles: int
    first_ms: int | None
    last_ms: int | None
    start_equity: Decimal
    end_equity: Decimal
    net: Decimal
    return_pct: Decimal
    trades: int
    wins: int
    losses: int
    win_rate_pct: Decimal | None
    profit_factor: Decimal | None
    max_drawdown_pct: Decimal
    closed_drawdown_pct: Decimal  # over closed trades only, as the promotion gate measures it
    sharpe: Decimal | None
    fills: int
    refused: int
    open_position: Decimal
    trading_state: str
    promotion_failures: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        def text(value: object) -> object:
            return str(value) if isinstance(value, Decimal) else value

        return {k: text(v) for k, v in self.__dict__.items() if k != "promotion_failures"} | {
            "promotion_failures": list(self.promotion_failures)
        }


class Recorder:
    """Fed by the backtest loop: one `bar` per candle, fills and order events, closed trades
    (the risk engine's `on_closed`), refusals and breaker events."""

    def __init__(self, capital: Decimal) -> None:
        self.capital = capital
        self.index = 0
        self.times = array("q")
        self.equity: list[Decimal] = []
        self.fills: list[FillRow] = []
        self.round_trips: list[RoundTrip] = []
        self.refusals: list[tuple[int, str, str]] = []
        self.risk_events: list[tuple[int, str, dict[str, Any]]] = []
        self.error: str | None = None
        self.book: BotBook | None = None
        self.trading_state = "active"
        self._fill_index: dict[int, int] = {}  # fill time -> candle index
        self._daily: list[Decimal] = []
        self._day = -1

    # -- while running ---------------------------------------------------------------------------

    def bar(self, close_ms: int, equity: Decimal) -> None:
        self.times.append(close_ms)
        previous = self.equity[-1] if self.equity else None
        # One object for a run of equal values: a flat bot's curve costs a pointer per candle.
        self.equity.append(previous if previous == equity and previous is not None else equity)
        day = close_ms // _DAY_MS
        if day != self._day:
            self._daily.append(equity)
            self._day = day
        else:
            self._daily[-1] = equity

    def event(self, event: dict[str, Any]) -> None:
        if event.get("event") != "fill":
            return
        fill = event["fill"]
        row = FillRow(
            self.index,
            int(fill["ts_ms"]),
            fill["side"],
            Decimal(fill["amount"]),
            Decimal(fill["price"]),
            Decimal(fill["fee"]),
        )
        self.fills.append(row)
        self._fill_index.setdefault(row.ts_ms, self.index)

    def closed(self, bot: str, trade: ClosedTrade) -> None:
        del bot  # one bot per backtest
        closed_ms = _ms(trade.closed_at)
        opened_ms = _ms(trade.opened_at) if trade.opened_at else closed_ms
        entry = self._fill_index.get(opened_ms, self.index)
        self.round_trips.append(RoundTrip(entry, self.index, opened_ms, closed_ms, trade.pnl))

    def refused(self, code: str, message: str) -> None:
        self.refusals.append((self.index, code, message))

    def risk_event(self, event: DomainEvent) -> None:
        self.risk_events.append((self.index, event.name.value, dict(event.details)))

    def fail(self, traceback: str) -> None:
        self.error = traceback

    def finish(self, book: BotBook, trading_state: str) -> None:
        self.book = book
        self.trading_state = trading_state

    # -- afterwards ------------------------------------------------------------------------------

    def report(self, thresholds: PromotionThresholds | None = None) -> Report:
        pnls = [t.pnl for t in self.round_trips]
        record = record_of(pnls)
        end = self.equity[-1] if self.equity else self.capital
        changes = [e for i, e in enumerate(self.equity) if i == 0 or e is not self.equity[i - 1]]
        daily = [self.capital, *self._daily]
        ratio = sharpe(returns_of(daily), 365) if all(e > 0 for e in daily[:-1]) else None
        gate = paper_record(pnls, self.capital)
        verdict = judge(gate, thresholds or PromotionThresholds())
        win_rate = record.win_rate
        held = sum((p.qty for p in self.book.positions.values()), Decimal(0)) if self.book else 0
        return Report(
            candles=len(self.times),
            first_ms=self.times[0] if self.times else None,
            last_ms=self.times[-1] if self.times else None,
            start_equity=self.capital,
            end_equity=end,
            net=end - self.capital,
            return_pct=(end - self.capital) / self.capital * _HUNDRED,
            trades=record.trades,
            wins=record.wins,
            losses=record.losses,
            win_rate_pct=None if win_rate is None else win_rate * _HUNDRED,
            profit_factor=record.profit_factor,
            max_drawdown_pct=max_drawdown([self.capital, *changes]) * _HUNDRED,
            closed_drawdown_pct=gate.max_drawdown_pct,
            sharpe=ratio,
            fills=len(self.fills),
            refused=len(self.refusals),
            open_position=Decimal(held),
            trading_state=self.trading_state,
            promotion_failures=verdict.failures,
        )

    def equity_rows(self) -> list[tuple[str, str]]:
        return [
            (datetime.fromtimestamp(t / 1000, UTC).isoformat(), str(e))
            for t, e in zip(self.times, self.equity, strict=True)
        ]
