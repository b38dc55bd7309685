"""RiskControl (the halt, reset and promotion behind `tradeguard risk` and the API) on a
migrated SQLite store: a halt never loosens a scope, a cancel that cannot reach its venue is
reported and keeps the order journaled, a reset re-bases the user's portfolio meters, and the
promotion gate's refusals and overrides are audited with who acted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError, VaultLocked
from tradeguard.core.events import EventName, MemorySink
from tradeguard.risk import BotBook, PromotionThresholds, Scope, SqlRiskStore, TradingState
from tradeguard.risk.breakers import BotMeters, UserMeters
from tradeguard.risk.control import RiskControl, UnknownRiskBot, venue_opener
from tradeguard.risk.store import BotRecord, StoredOrder
from tradeguard.vault import Vault

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GATE = PromotionThresholds(
    min_trades=1, min_win_rate_pct=Decimal(50), min_profit_factor=Decimal(1),
    max_drawdown_pct=Decimal(50),
)  # fmt: skip


def locked_vault() -> Vault:
    raise VaultLocked("the vault of alice is locked; unlock it")


def control_for(db: sa.Engine, events: MemorySink, actor: str = "user:2") -> RiskControl:
    opener = venue_opener(db, Settings(), locked_vault)
    return RiskControl(SqlRiskStore(db), events, opener, actor=actor, ip="192.0.2.7")


def add_bot(db: sa.Engine, name: str = "sma", account: str = "paper:alice") -> None:
    record = BotRecord(name, "alice", account, "paper", BotBook(), BotMeters(), None, Decimal(10))
    SqlRiskStore(db).save_bot(record, NOW)


def test_a_halt_never_loosens_a_scope_nor_takes_it_over(sqlite_db: sa.Engine) -> None:
    store = SqlRiskStore(sqlite_db)
    store.save_state(Scope.bot("sma"), TradingState.HALTED, "incident", "operator", NOW)
    events = MemorySink()
    outcome = asyncio.run(
        control_for(sqlite_db, events).halt(Scope.bot("sma"), "mine", reducing=True)
    )
    assert (outcome.state, outcome.changed) == (TradingState.HALTED, False)
    kept = store.states()[Scope.bot("sma")]
    assert (kept.actor, kept.reason) == ("operator", "incident")
    assert events.events == []


def test_reducing_then_halted_is_recorded_with_actor_and_ip(sqlite_db: sa.Engine) -> None:
    events = MemorySink()
    control = control_for(sqlite_db, events)
    first = asyncio.run(control.halt(Scope.user("alice"), "calm down", reducing=True))
    second = asyncio.run(control.halt(Scope.user("alice"), "stop now"))
    assert (first.state, second.state) == (TradingState.REDUCING, TradingState.HALTED)
    assert first.changed
    assert second.changed
    changes = [e for e in events.events if e.name is EventName.RISK_STATE_CHANGED]
    assert [(e.details["from"], e.details["to"]) for e in changes] == [
        ("ACTIVE", "REDUCING"),
        ("REDUCING", "HALTED"),
    ]
    assert {(e.actor, e.ip) for e in changes} == {("user:2", "192.0.2.7")}


def test_a_cancel_that_cannot_reach_its_venue_is_reported_and_kept(sqlite_db: sa.Engine) -> None:
    add_bot(sqlite_db, account="binance:main")
    store = SqlRiskStore(sqlite_db)
    order = StoredOrder("0x" + "1" * 32, "sma", "binance:main", "BTC/USDT")
    store.record_order(order, NOW)
    events = MemorySink()
    outcome = asyncio.run(control_for(sqlite_db, events).halt(Scope.bot("sma"), "stop"))
    assert outcome.state is TradingState.HALTED
    [canceled] = outcome.canceled
    assert canceled.failed
    assert "vault of alice is locked" in canceled.result
    assert store.orders(["sma"]) == [order]  # still journaled: a second halt tries again
    [summary] = [e for e in events.events if e.name is EventName.RISK_ORDERS_CANCELED]
    assert (summary.details["canceled"], summary.details["failed"]) == (0, 1)


def test_reset_reopens_and_rebases_the_users_meters(sqlite_db: sa.Engine) -> None:
    store = SqlRiskStore(sqlite_db)
    meters = UserMeters()
    meters.peak.update(Decimal(100))
    meters.equity = Decimal(50)
    meters.peak.update(Decimal(50))
    store.save_user("alice", meters, NOW)
    store.save_state(Scope.user("alice"), TradingState.HALTED, "breaker", "system", NOW)
    events = MemorySink()
    control = control_for(sqlite_db, events)
    assert control.reset(Scope.user("alice"), "checked") is TradingState.HALTED
    assert store.states() == {}
    rebased = store.load_user("alice")
    assert rebased is not None
    assert rebased.peak.drawdown == 0
    assert control.reset(Scope.user("alice"), "again") is None  # ACTIVE: nothing to do
    assert [e.name for e in events.events] == [EventName.RISK_RESET]
    with pytest.raises(ConfigError, match="one line"):
        control.reset(Scope.user("alice"), "two\nlines")


def test_promotion_refusal_and_override_are_audited(sqlite_db: sa.Engine) -> None:
    add_bot(sqlite_db)
    events = MemorySink()
    control = control_for(sqlite_db, events)
    refused = control.promote("sma", GATE)
    assert not refused.promoted
    assert refused.verdict is not None
    assert "closed paper trades: 0" in refused.verdict.failures[0]
    with pytest.raises(ConfigError, match="one line"):
        control.promote("sma", GATE, override=True)
    forced = control.promote("sma", GATE, override=True, reason="desk approved")
    assert forced.promoted
    assert forced.reason == "desk approved"
    again = control.promote("sma", GATE)
    assert again.verdict is None
    assert again.promoted_at == forced.promoted_at
    assert [e.name for e in events.events] == [
        EventName.BOT_PROMOTION_REFUSED,
        EventName.BOT_PROMOTED,
    ]
    with pytest.raises(UnknownRiskBot):
        control.promote("ghost", GATE)
