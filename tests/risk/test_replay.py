"""Real candles, a deliberately losing bot, the paper venue and the risk engine end to end.

The bot churns: flat, it buys at market; long, it sells at market, so every round trip pays
two taker fees and two slippages. The bundled ETH/BTC 5-minute candles are replayed through
`PaperVenue` behind a `GuardedVenue` on SQLite, with the clock at each candle's close. The test
keeps its own plain ledger of every fill and mark (equity, closed trades, day starts, peaks)
and asserts that each breaker trips on exactly the event where that ledger first crosses its
limit, and that after the trip no order reaches the paper venue until a person resets it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.risk.conftest import migrated

from tradeguard.core.clock import ManualClock
from tradeguard.core.events import MemorySink
from tradeguard.marketdata import ReplayFeed, load_sample
from tradeguard.risk import (
    BotLimits,
    Breaker,
    Breakers,
    OrderIntent,
    Reason,
    RiskDenied,
    RiskEngine,
    Scope,
    SqlRiskStore,
    TradingState,
    UserLimits,
)
from tradeguard.risk.guard import GuardedVenue
from tradeguard.venues import Side, Trade
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles

D = Decimal
ZERO = Decimal(0)
SYMBOL = "ETH/BTC"
ACCOUNT = "paper:churn"
CAPITAL = D(1)  # BTC
SIZE = D(5)  # ETH per round trip: about 0.5 BTC at 2018 prices


@dataclass
class Ledger:
    """The test's own books: position, realized PnL with fees, marks; equity per event."""

    capital: Decimal
    qty: Decimal = ZERO
    cost: Decimal = ZERO  # quote paid for the open position, fees included
    realized: Decimal = ZERO
    mark: Decimal = ZERO
    closed: list[Decimal] = field(default_factory=list)

    def fill(self, trade: Trade) -> Decimal | None:
        self.mark = trade.price
        if trade.side is Side.BUY:
            self.qty += trade.amount
            self.cost += trade.amount * trade.price + trade.fee
            return None
        pnl = trade.amount * trade.price - trade.fee - self.cost
        self.qty -= trade.amount
        assert self.qty == 0  # the bot always sells everything
        self.cost = D(0)
        self.realized += pnl
        self.closed.append(pnl)
        return pnl

    def equity(self) -> Decimal:
        # cost includes the entry fee, so equity = capital + realized + (value - cost)
        return self.capital + self.realized + self.qty * self.mark - self.cost


@dataclass
class Expectation:
    """When each breaker first crosses its limit, from the test's ledger."""

    breakers: Breakers
    losses_in_a_row: int = 0
    peak: Decimal = ZERO
    day: date | None = None
    day_start: Decimal = ZERO
    last_equity: Decimal = ZERO

    def crossed(self, equity: Decimal, at: datetime, pnl: Decimal | None) -> Breaker | None:
        if self.day is None:
            self.day, self.day_start, self.peak = at.date(), self.last_equity, self.last_equity
        if at.date() != self.day:
            self.day, self.day_start = at.date(), self.last_equity
        self.last_equity = equity
        self.peak = max(self.peak, equity)
        if pnl is not None:
            self.losses_in_a_row = self.losses_in_a_row + 1 if pnl < 0 else 0
        b = self.breakers
        if b.max_consecutive_losses and self.losses_in_a_row >= b.max_consecutive_losses:
            return Breaker.CONSECUTIVE_LOSSES
        loss = (self.day_start - equity) / self.day_start * 100
        if b.max_daily_loss_pct and loss >= b.max_daily_loss_pct:
            return Breaker.DAILY_LOSS
        if b.max_drawdown_pct and (self.peak - equity) / self.peak * 100 >= b.max_drawdown_pct:
            return Breaker.DRAWDOWN
        return None


@dataclass
class Run:
    events: int
    tripped_at: int | None
    expected_at: int | None
    breaker: Breaker | None
    expected_breaker: Breaker | None
    denied_after: int
    paper_orders_after_trip: int
    passes_after_reset: bool


def paper_orders(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM paper_orders")).scalar_one())


async def churn(db: sa.Engine, breakers: Breakers, fees_bps: Decimal, candles: int = 3000) -> Run:
    data = load_sample("ETH_BTC-5m.csv").candles[:candles]
    market = market_from_candles(SYMBOL, data, amount_step=D("0.001"))
    clock = ManualClock(datetime.fromtimestamp(data[0].ts_ms / 1000, UTC))
    paper = PaperVenue(
        db,
        account="churn",
        markets={SYMBOL: market},
        config=PaperConfig(
            taker_fee_bps=fees_bps, slippage_bps=fees_bps, starting_balances={"BTC": CAPITAL}
        ),
        clock=clock,
    )
    store = SqlRiskStore(db)
    engine = RiskEngine(clock=clock, events=MemorySink(), store=store)
    engine.add_account(ACCOUNT, {SYMBOL: market}, await paper.fetch_balance())
    engine.set_user_limits("trader", UserLimits(max_portfolio_drawdown_pct=None))
    limits = BotLimits(
        capital=CAPITAL,
        symbols=frozenset({SYMBOL}),
        blocked_zones=frozenset(),
        price_band_pct=D(5),
        breakers=breakers,
    )
    engine.register_bot("churn", user="trader", account=ACCOUNT, limits=limits)
    guard = GuardedVenue(engine, paper, account=ACCOUNT, journal=store)
    ledger, expect = Ledger(CAPITAL), Expectation(breakers, last_equity=CAPITAL)
    events = 0
    tripped_at = expected_at = None
    tripped = expected = None
    denied_after, orders_at_trip, n = 0, 0, 0
    refusals: list[tuple[bool, Reason]] = []  # (after the trip?, why)
    async for symbol, candle in ReplayFeed({SYMBOL: data}, "5m", clock=clock):
        for trade in await paper.on_candle(symbol, candle):
            events += 1
            pnl = ledger.fill(trade)
            crossed = expect.crossed(ledger.equity(), clock.now(), pnl)
            if crossed and expected_at is None:
                expected_at, expected = events, crossed
            trips = await guard.on_trades([trade])
            if trips and tripped_at is None:
                tripped_at, tripped = events, trips[0].reading.breaker
                orders_at_trip = paper_orders(db)
        events += 1
        ledger.mark = candle.close
        if ledger.qty:
            crossed = expect.crossed(ledger.equity(), clock.now(), None)
            if crossed and expected_at is None:
                expected_at, expected = events, crossed
        trips = await guard.on_close(symbol, candle.close)
        if trips and tripped_at is None:
            tripped_at, tripped = events, trips[0].reading.breaker
            orders_at_trip = paper_orders(db)
        n += 1
        side = "sell" if ledger.qty else "buy"
        try:
            await guard.submit("churn", OrderIntent(f"0x{n:032x}", SYMBOL, side, "market", SIZE))
        except RiskDenied as denied:
            refusals.append((tripped_at is not None, denied.reason))
            denied_after += 1
        if tripped_at is not None and denied_after >= 20:
            break
    # every refusal came after the trip, and for the halt
    assert set(refusals) <= {(True, Reason.HALTED)}, refusals
    after_trip = paper_orders(db) - orders_at_trip if tripped_at is not None else 0
    passes = False
    if tripped_at is not None:
        assert engine.state(Scope.bot("churn")) is TradingState.HALTED
        engine.reset(Scope.bot("churn"), actor="operator", reason="replay test")
        side = "sell" if ledger.qty else "buy"
        await guard.submit("churn", OrderIntent("0x" + "f" * 32, SYMBOL, side, "market", SIZE))
        passes = paper_orders(db) == orders_at_trip + 1
    await paper.close()
    return Run(events, tripped_at, expected_at, tripped, expected, denied_after, after_trip, passes)


OFF = {"max_consecutive_losses": None, "max_daily_loss_pct": None, "max_drawdown_pct": None}


@pytest.mark.parametrize(
    ("breaker", "breakers", "fees_bps"),
    [
        (Breaker.CONSECUTIVE_LOSSES, Breakers(**{**OFF, "max_consecutive_losses": 3}), D(10)),
        (Breaker.DAILY_LOSS, Breakers(**{**OFF, "max_daily_loss_pct": D(5)}), D(30)),
        (Breaker.DRAWDOWN, Breakers(**{**OFF, "max_drawdown_pct": D(25)}), D(30)),
    ],
    ids=lambda v: v.value if isinstance(v, Breaker) else None,
)
def test_each_breaker_trips_on_the_exact_event_and_stops_orders(
    tmp_path: Path, breaker: Breaker, breakers: Breakers, fees_bps: Decimal
) -> None:
    db = migrated(tmp_path / "data")
    run = asyncio.run(churn(db, breakers, fees_bps))
    assert run.expected_at is not None, "the losing bot never crossed the limit in the data"
    assert run.expected_breaker is breaker
    assert (run.tripped_at, run.breaker) == (run.expected_at, run.expected_breaker)
    assert run.denied_after == 20  # the bot kept trying; every order was refused
    assert run.paper_orders_after_trip == 0  # none reached the venue
    assert run.passes_after_reset


def test_default_breakers_trip_on_the_first_limit_crossed(tmp_path: Path) -> None:
    db = migrated(tmp_path / "data")
    run = asyncio.run(churn(db, Breakers(), D(30)))
    assert run.tripped_at == run.expected_at
    assert run.breaker is run.expected_breaker is not None
    assert run.paper_orders_after_trip == 0
