"""`tradeguard risk` and `tradeguard bots promote` through the real command.

A bot trades on a paper account through the risk engine in this process (as the server will);
the commands run as separate processes against the same database, as an operator would run
them while the server is up.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import CliRunner, Run, audit_key_env

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import MemorySink
from tradeguard.marketdata import load_sample
from tradeguard.risk import (
    BotLimits,
    ClosedTrade,
    Mode,
    OrderIntent,
    Reason,
    RiskEngine,
    Scope,
    SqlRiskStore,
    TradingState,
)
from tradeguard.risk.guard import GuardedVenue
from tradeguard.store import create_engine, resolve_database
from tradeguard.venues import OrderStatus
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles

D = Decimal
SYMBOL = "ETH/BTC"
ACCOUNT = "paper:desk"
CANDLES = load_sample("ETH_BTC-5m.csv").candles[:50]


@dataclass
class Home:
    root: Path
    tg: CliRunner

    def ok(self, *args: str) -> Run:
        run = self.tg(*args)
        assert run.code == 0, f"{args}: exit {run.code}\n{run.output}"
        return run

    def db(self) -> sa.Engine:
        target = resolve_database(None, self.root / "data", production=False)
        return create_engine(target)

    def audit_events(self) -> list[str]:
        with closing(sqlite3.connect(self.root / "data" / "tradeguard.db")) as conn:
            return [row[0] for row in conn.execute("SELECT event FROM audit_log ORDER BY seq")]


@pytest.fixture
def home(cli: CliRunner, tmp_path: Path) -> Home:
    cli.env.update({"TRADEGUARD_DATA_DIR": str(tmp_path / "data"), **audit_key_env(tmp_path)})
    home = Home(tmp_path, cli)
    home.ok("db", "upgrade")
    return home


def engine_for(db: sa.Engine, clock: ManualClock) -> tuple[RiskEngine, PaperVenue]:
    market = market_from_candles(SYMBOL, CANDLES, amount_step=D("0.001"))
    paper = PaperVenue(
        db, account="desk", markets={SYMBOL: market}, clock=clock,
        config=PaperConfig(starting_balances={"BTC": D(10)}),
    )  # fmt: skip
    engine = RiskEngine(clock=clock, events=MemorySink(), store=SqlRiskStore(db))
    engine.add_account(ACCOUNT, {SYMBOL: market}, asyncio.run(paper.fetch_balance()))
    limits = BotLimits(capital=D(10), symbols=frozenset({SYMBOL}), blocked_zones=frozenset())
    engine.register_bot("sma", user="alice", account=ACCOUNT, limits=limits)
    return engine, paper


def test_halt_refuses_new_orders_cancels_open_ones_and_reset_reopens(home: Home) -> None:
    db = home.db()
    clock = ManualClock(CANDLES[0].at + timedelta(minutes=5))
    engine, paper = engine_for(db, clock)
    guard = GuardedVenue(engine, paper, account=ACCOUNT, journal=SqlRiskStore(db))

    async def place() -> list[str]:
        await paper.on_candle(SYMBOL, CANDLES[0])
        await guard.on_close(SYMBOL, CANDLES[0].close)
        price = CANDLES[0].close * D("0.98")
        ids = []
        for n in range(2):
            cid = f"0x{n:032x}"
            tick = D("0.000001")
            intent = OrderIntent(
                cid, SYMBOL, "buy", "limit", D(1), (price / tick).to_integral_value() * tick
            )
            await guard.submit("sma", intent)
            ids.append(cid)
        return ids

    ids = asyncio.run(place())
    run = home.ok("risk", "halt", "--bot", "sma", "--reason", "fat finger on the desk")
    assert "bot:sma is HALTED: new orders are refused." in run.stdout
    for cid in ids:
        assert cid in run.stdout
    assert run.stdout.count("canceled") >= 2
    orders = asyncio.run(paper.fetch_open_orders())
    assert orders == []
    assert (
        asyncio.run(paper.fetch_order(SYMBOL, client_order_id=ids[0])).status
        is OrderStatus.CANCELED
    )

    # the running engine picks the halt up; so does a restarted one
    engine.reload_states()
    denied = engine.pre_trade("sma", OrderIntent("0x" + "a" * 32, SYMBOL, "buy", "market", D(1)))
    assert getattr(denied, "reason", None) is Reason.HALTED
    restarted, _ = engine_for(db, clock)
    assert restarted.effective_state("sma") is TradingState.HALTED

    status = home.ok("risk", "status")
    assert "bot:sma" in status.stdout
    assert "HALTED" in status.stdout
    assert "fat finger on the desk" in status.stdout

    no_reason = home.tg("risk", "reset", "--bot", "sma")
    assert no_reason.code == 2
    assert "--reason" in no_reason.stderr
    home.ok("risk", "reset", "--bot", "sma", "--reason", "checked the bot")
    engine.reload_states()
    assert engine.effective_state("sma") is TradingState.ACTIVE
    events = home.audit_events()
    for name in ("risk.state.changed", "risk.orders.canceled", "risk.reset"):
        assert name in events


BAD_INPUT = [
    (("risk", "halt"), "name exactly one scope"),
    (("risk", "halt", "--all", "--bot", "x"), "name exactly one scope"),
    (("risk", "halt", "--bot", "no spaces allowed"), "a bot name is 1 to 64"),
    (("risk", "halt", "--all", "--reason", "two\nlines"), "--reason is one line"),
    (("bots", "promote", "ghost"), "no bot 'ghost'"),
]


def test_bad_input_is_refused_and_changes_nothing(home: Home) -> None:
    # one home for every case: each must leave it as it was
    for args, message in BAD_INPUT:
        run = home.tg(*args)
        assert run.code == 2, (args, run.output)
        assert message in run.stderr, args
        with closing(sqlite3.connect(home.root / "data" / "tradeguard.db")) as conn:
            assert conn.execute("SELECT count(*) FROM risk_states").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)


def record_trades(db: sa.Engine, pnls: list[Decimal]) -> None:
    store = SqlRiskStore(db)
    bot = store.load_bot("sma")
    assert bot is not None
    at = datetime(2026, 1, 1, tzinfo=UTC)
    trades = [ClosedTrade(SYMBOL, p, at, at + timedelta(minutes=i)) for i, p in enumerate(pnls)]
    store.save_fill(bot, trades, at)


def test_promotion_gate_refuses_a_thin_record_and_an_override_needs_a_reason(home: Home) -> None:
    db = home.db()
    engine_for(db, ManualClock())
    record_trades(db, [D("0.1"), D("-0.05"), D("0.2")])
    refused = home.tg("bots", "promote", "sma")
    assert refused.code == 1
    assert "closed paper trades: 3, needs at least 100" in refused.stderr
    for threshold in (">= 100", ">= 60%", ">= 1.5", "<= 15%"):  # the thresholds are shown
        assert threshold in refused.stdout
    with pytest.raises(ConfigError, match="not promoted"):
        engine_for_live(db)
    unexplained = home.tg("bots", "promote", "sma", "--override")
    assert unexplained.code == 2
    assert "--reason" in unexplained.stderr
    home.ok("bots", "promote", "sma", "--override", "--reason", "approved by risk desk")
    engine_for_live(db)  # now accepted
    events = home.audit_events()
    assert events.count("bot.promotion.refused") == 1  # the unexplained override wrote nothing
    assert "bot.promoted" in events


def test_promotion_thresholds_come_from_settings(home: Home) -> None:
    db = home.db()
    engine_for(db, ManualClock())
    record_trades(db, [D("0.2"), D("0.1"), D("-0.1"), D("0.3")])
    home.tg.env.update({"TRADEGUARD_PROMOTION_MIN_TRADES": "4"})
    run = home.ok("bots", "promote", "sma")
    assert "sma may now trade live (passed the gate)" in run.stdout
    assert ">= 4" in run.stdout


def engine_for_live(db: sa.Engine) -> None:
    engine = RiskEngine(clock=ManualClock(), events=MemorySink(), store=SqlRiskStore(db))
    market = market_from_candles(SYMBOL, CANDLES, amount_step=D("0.001"))
    engine.add_account(ACCOUNT, {SYMBOL: market})
    limits = BotLimits(capital=D(10), symbols=frozenset({SYMBOL}))
    engine.register_bot("sma", user="alice", account=ACCOUNT, limits=limits, mode=Mode.LIVE)
    assert engine.state(Scope.bot("sma")) is TradingState.ACTIVE
