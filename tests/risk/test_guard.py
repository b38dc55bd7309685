"""`GuardedVenue` against a halt written by another process at the worst moment: after this
process checked and journaled an order, before it sent it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.risk.conftest import migrated

from tradeguard.core.clock import ManualClock
from tradeguard.core.events import MemorySink
from tradeguard.marketdata import load_sample
from tradeguard.risk import (
    BotLimits,
    OrderIntent,
    Reason,
    RiskDenied,
    RiskEngine,
    Scope,
    SqlRiskStore,
    TradingState,
)
from tradeguard.risk.guard import GuardedVenue
from tradeguard.risk.store import StoredOrder
from tradeguard.store import create_engine, resolve_database
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles

D = Decimal
SYMBOL = "ETH/BTC"
CANDLES = load_sample("ETH_BTC-5m.csv").candles[:5]


class HaltedWhileJournaling(SqlRiskStore):
    """The journal of this process; the moment it commits an order, the operator's
    `risk halt` (another process, its own connection) commits a halt of the bot."""

    async def record_order_async(self, order: StoredOrder, at: datetime) -> None:
        await super().record_order_async(order, at)
        operator = SqlRiskStore(create_engine(resolve_database(None, self.data, production=False)))
        operator.save_state(Scope.bot(order.bot), TradingState.HALTED, "panic", "operator", at)

    data: Path


def test_a_halt_landing_after_the_journal_stops_the_order_before_it_is_sent(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = migrated(data)
    clock = ManualClock(CANDLES[0].at + timedelta(minutes=5))
    market = market_from_candles(SYMBOL, CANDLES)
    paper = PaperVenue(
        db,
        account="a",
        markets={SYMBOL: market},
        clock=clock,
        config=PaperConfig(starting_balances={"BTC": D(1)}),
    )
    journal = HaltedWhileJournaling(db)
    journal.data = data
    engine = RiskEngine(clock=clock, events=MemorySink(), store=journal)
    engine.add_account("paper:a", {SYMBOL: market}, asyncio.run(paper.fetch_balance()))
    limits = BotLimits(capital=D(1), symbols=frozenset({SYMBOL}), blocked_zones=frozenset())
    engine.register_bot("b", user="u", account="paper:a", limits=limits)
    engine.on_price("paper:a", SYMBOL, CANDLES[0].close)
    guard = GuardedVenue(engine, paper, account="paper:a", journal=journal)

    intent = OrderIntent("0x" + "1" * 32, SYMBOL, "buy", "limit", D("0.01"), CANDLES[0].close)
    with pytest.raises(RiskDenied) as denied:
        asyncio.run(guard.submit("b", intent))
    assert denied.value.reason is Reason.HALTED
    assert asyncio.run(paper.fetch_open_orders()) == []  # nothing reached the venue
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM paper_orders")).scalar_one() == 0
    assert journal.orders() == []  # and nothing is left journaled
    assert engine.book("b").orders == {}


def test_a_trip_with_close_positions_on_trip_sends_one_closing_order_past_the_halt(
    sqlite_db: sa.Engine,
) -> None:
    db = sqlite_db
    first, second = CANDLES[0], CANDLES[1]
    clock = ManualClock(first.at + timedelta(minutes=5))
    market = market_from_candles(SYMBOL, CANDLES)
    paper = PaperVenue(
        db, account="a", markets={SYMBOL: market}, clock=clock,
        config=PaperConfig(starting_balances={"BTC": D(1)}),
    )  # fmt: skip
    engine = RiskEngine(clock=clock, events=MemorySink(), store=SqlRiskStore(db))
    engine.add_account("paper:a", {SYMBOL: market}, asyncio.run(paper.fetch_balance()))
    limits = BotLimits(
        capital=D(1), symbols=frozenset({SYMBOL}), blocked_zones=frozenset(),
        close_positions_on_trip=True,
    )  # fmt: skip
    engine.register_bot("b", user="u", account="paper:a", limits=limits)
    guard = GuardedVenue(engine, paper, account="paper:a", journal=SqlRiskStore(db))

    async def scenario() -> None:
        await paper.on_candle(SYMBOL, first)
        await guard.on_close(SYMBOL, first.close)
        await guard.submit("b", OrderIntent("0x" + "1" * 32, SYMBOL, "buy", "market", D(10)))
        await guard.on_trades(await paper.on_candle(SYMBOL, second))  # bought ~10 ETH
        held = engine.book("b").qty(SYMBOL)
        assert held > 0
        # the price halves, on a mark
        trips = await guard.on_close(SYMBOL, second.close / 2)
        # the bot's daily loss and the user's portfolio drawdown trip on the same mark, and
        # both ask for the position to be closed: it is closed once
        assert [t.reading.breaker.value for t in trips] == ["daily_loss", "portfolio_drawdown"]
        assert engine.effective_state("b") is TradingState.HALTED
        [closing] = await paper.fetch_open_orders()  # the one order a halted bot may send
        assert (closing.side.value, closing.amount, closing.type.value) == ("sell", held, "market")
        # asked again (another trip), nothing more is sent: the open close covers it
        assert engine.closing_order("b", SYMBOL, "0x" + "3" * 32) is None
        with pytest.raises(RiskDenied):  # the bot itself still may not
            await guard.submit("b", OrderIntent("0x" + "2" * 32, SYMBOL, "sell", "market", D(1)))

    asyncio.run(scenario())
