"""`GuardedVenue` against a halt written by another process at the worst moment: after this
process checked and journaled an order, before it sent it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

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
from tradeguard.store import create_engine, resolve_database, upgrade
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles

D = Decimal
SYMBOL = "ETH/BTC"
CANDLES = load_sample("ETH_BTC-5m.csv").candles[:5]


class HaltedWhileJournaling(SqlRiskStore):
    """The journal of this process; the moment it commits an order, the operator's
    `risk halt` (another process, its own connection) commits a halt of the bot."""

    def record_order(self, order: StoredOrder, at: datetime) -> None:
        super().record_order(order, at)
        operator = SqlRiskStore(create_engine(resolve_database(None, self.data, production=False)))
        operator.save_state(Scope.bot(order.bot), TradingState.HALTED, "panic", "operator", at)

    data: Path


def test_a_halt_landing_after_the_journal_stops_the_order_before_it_is_sent(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    target = resolve_database(None, data, production=False)
    db = create_engine(target)
    upgrade(db, target)
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
