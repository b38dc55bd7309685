"""Risk events land in the tamper-evident audit log when it is the engine's event sink: a
registration, the trip and its halt, and the reset, each with its details."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from tests.audit.conftest import new_keys

from tradeguard.audit import AuditLog, verify
from tradeguard.core.clock import ManualClock
from tradeguard.risk import BotLimits, OrderIntent, RiskEngine, Scope
from tradeguard.venues.types import Balance, BalanceLine, Liquidity, Market, MarketKind, Side, Trade

D = Decimal
ETH = Market("ETH/USDT", "ETHUSDT", "ETH", "USDT", MarketKind.SPOT, D("0.01"), D("0.0001"))


def test_a_trip_and_its_reset_are_in_the_audit_log_and_it_verifies(sqlite_db: sa.Engine) -> None:
    db = sqlite_db
    keys = new_keys()
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    audit = AuditLog(db, keys, clock=clock)
    engine = RiskEngine(clock=clock, events=audit)
    engine.add_account("acc", {ETH.symbol: ETH}, Balance({"USDT": BalanceLine(D(1000), D(0))}))
    limits = BotLimits(capital=D(1000), symbols=frozenset({ETH.symbol}), blocked_zones=frozenset())
    engine.register_bot("loser", user="alice", account="acc", limits=limits)
    for n in range(3):  # three losing round trips
        for side, price in (("buy", D(100)), ("sell", D(99))):
            engine.on_price("acc", ETH.symbol, price)
            cid = f"{side}{n}"
            assert engine.pre_trade("loser", OrderIntent(cid, ETH.symbol, side, "market", D(1)))
            trade = Trade(f"t{cid}", f"v{cid}", cid, ETH.symbol, Side(side), price, D(1), D(0),
                          "USDT", Liquidity.TAKER, clock.now())  # fmt: skip
            trips = engine.on_fill("loser", trade)
    assert [t.reading.breaker.value for t in trips] == ["consecutive_losses"]
    engine.reset(Scope.bot("loser"), actor="operator", reason="reviewed the strategy")
    audit.close()

    with db.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT event, subject, details FROM audit_log ORDER BY seq")
        ).all()
    names = [r.event for r in rows]
    # (two losses of three is 67% of the limit: under the 80% warning level)
    assert names == [
        "risk.bot.registered", "risk.state.changed", "risk.breaker.tripped", "risk.reset",
    ]  # fmt: skip
    assert {r.subject for r in rows} == {"bot:loser"}
    tripped = json.loads(rows[names.index("risk.breaker.tripped")].details)
    assert tripped == {
        "breaker": "consecutive_losses", "value": "3", "limit": "3", "orders_to_cancel": 0,
    }  # fmt: skip
    assert json.loads(rows[-1].details)["reason"] == "reviewed the strategy"
    assert verify(db, keys).ok
