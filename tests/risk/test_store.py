"""`SqlRiskStore` under `RiskEngine`, on SQLite and PostgreSQL: what must survive a restart
(a halt stays a halt, books and breaker meters carry on), trips and their resets, closed
trades by mode, and states written by another process.

A restart is a new `RiskEngine` on a new SQLAlchemy engine for the same database.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from tests.vault.conftest import engine as engine  # the migrated store, SQLite and PostgreSQL

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import MemorySink
from tradeguard.risk import (
    BotBook,
    Breaker,
    Denial,
    Mode,
    OrderIntent,
    Position,
    Reason,
    RiskEngine,
    Scope,
    SqlRiskStore,
    TradingState,
    Trip,
    bot_limits_from,
)
from tradeguard.risk.store import StoredTrade, TripRecord
from tradeguard.store import DatabaseTarget, create_engine
from tradeguard.venues.types import (
    Balance,
    BalanceLine,
    Liquidity,
    Market,
    MarketKind,
    OrderType,
    Side,
    Trade,
)

D = Decimal
ETH = Market("ETH/USDT", "ETHUSDT", "ETH", "USDT", MarketKind.SPOT, D("0.01"), D("0.0001"))
MARKETS = {ETH.symbol: ETH}
ACCOUNT = "paper:alice"
START = datetime(2026, 1, 1, 12, tzinfo=UTC)
HALTED, ACTIVE = TradingState.HALTED, TradingState.ACTIVE
_ids = itertools.count(1)


class Process:
    """One tradeguard process: a RiskEngine on its own connection pool to the database."""

    def __init__(self, db: sa.Engine, clock: ManualClock) -> None:
        self.clock = clock
        self.events = MemorySink()
        self.store = SqlRiskStore(db)
        self.engine = RiskEngine(clock=clock, events=self.events, store=self.store)
        cash = Balance({"USDT": BalanceLine(D(1_000_000), D(0))})
        self.engine.add_account(ACCOUNT, MARKETS, cash)

    def bot(
        self, name: str = "b1", user: str = "alice", mode: Mode = Mode.PAPER, **raw: Any
    ) -> str:
        limits = bot_limits_from({"capital": 1000, "symbols": [ETH.symbol], **raw})
        self.engine.register_bot(name, user=user, account=ACCOUNT, limits=limits, mode=mode)
        return name

    def fill(self, bot: str, side: Side, amount: str, price: str, fee: str = "0") -> list[Trip]:
        n = next(_ids)
        trade = Trade(
            f"t{n}", f"v{n}", None, ETH.symbol, side, D(price), D(amount), D(fee), "USDT",
            Liquidity.TAKER, self.clock.now(),
        )  # fmt: skip
        return self.engine.on_fill(bot, trade)

    def round_trip(self, bot: str, entry: str, exit_: str) -> list[Trip]:
        self.fill(bot, Side.BUY, "1", entry)
        return self.fill(bot, Side.SELL, "1", exit_)

    def buy(self, bot: str) -> Any:
        intent = OrderIntent(f"o{next(_ids)}", ETH.symbol, "buy", OrderType.MARKET.value, D("0.1"))
        return self.engine.pre_trade(bot, intent)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def restart(db_target: DatabaseTarget, clock: ManualClock) -> Iterator[Any]:
    """Start another process on the same database (its own SQLAlchemy engine)."""
    pools: list[sa.Engine] = []

    def start() -> Process:
        pools.append(create_engine(db_target))
        return Process(pools[-1], clock)

    yield start
    for pool in pools:
        pool.dispose()


@pytest.fixture
def first(engine: sa.Engine, clock: ManualClock) -> Process:
    return Process(engine, clock)


def halted(decision: Any) -> bool:
    return isinstance(decision, Denial) and decision.reason is Reason.HALTED


# -- a halt stays a halt -----------------------------------------------------------------------


def test_a_tripped_halt_survives_a_restart(first: Process, restart: Any) -> None:
    bot = first.bot()
    first.fill(bot, Side.BUY, "10", "100")
    [trip] = first.engine.on_price(ACCOUNT, ETH.symbol, D(95))  # 5% daily loss
    assert trip.reading.breaker is Breaker.DAILY_LOSS
    second = restart()
    assert second.engine.state(Scope.bot(bot)) is HALTED  # before the bot is even registered
    second.bot()
    second.engine.on_price(ACCOUNT, ETH.symbol, D(95))
    assert second.engine.effective_state(bot) is HALTED
    assert halted(second.buy(bot))
    stored = second.store.states()[Scope.bot(bot)]
    assert (stored.state, stored.reason, stored.actor) == (HALTED, "breaker daily_loss", "system")
    assert stored.changed_at == START


@pytest.mark.parametrize(
    "scope", [Scope.bot("b1"), Scope.user("alice"), Scope.parse("global")], ids=str
)
def test_a_halt_by_hand_survives_a_restart(first: Process, restart: Any, scope: Scope) -> None:
    first.bot()
    first.engine.set_state(scope, HALTED, actor="operator", reason="emergency stop")
    second = restart()
    second.bot()
    second.engine.on_price(ACCOUNT, ETH.symbol, D(100))
    assert second.engine.state(scope) is HALTED
    decision = second.buy("b1")
    assert halted(decision)
    assert f"HALTED for {scope}" in decision.message


def test_a_reset_survives_a_restart(first: Process, restart: Any) -> None:
    bot = first.bot()
    first.engine.set_state(Scope.bot(bot), HALTED, actor="operator", reason="stop")
    first.engine.reset(Scope.bot(bot), actor="operator", reason="resume")
    second = restart()
    second.bot()
    assert second.engine.effective_state(bot) is ACTIVE
    assert second.store.states() == {}


# -- books and meters carry on -----------------------------------------------------------------


def test_the_book_and_meters_survive_a_restart(first: Process, restart: Any) -> None:
    bot = first.bot()
    first.round_trip(bot, "100", "99")  # -1
    first.round_trip(bot, "100", "98")  # -2
    first.fill(bot, Side.BUY, "2", "100", fee="0.2")
    before: BotBook = first.engine.book(bot)
    second = restart()
    second.bot()
    book = second.engine.book(bot)
    assert book.positions == {ETH.symbol: Position(D(2), D(100), D("-0.2"), START)}
    assert book.positions == before.positions
    assert book.realized == D("-3.2") == before.realized
    assert book.orders == {}  # open orders come from the venue, not the store
    assert {r.breaker: r.value for r in second.engine.readings(bot)}[
        Breaker.CONSECUTIVE_LOSSES
    ] == 2
    assert second.engine.equity(bot) == D("996.8")  # 1000 - 3.2, marked at the entry
    # the loss run carries on: one more losing trade trips
    [trip] = second.fill(bot, Side.SELL, "2", "99.9")
    assert (trip.reading.breaker, trip.reading.value) == (Breaker.CONSECUTIVE_LOSSES, D(3))
    assert second.engine.state(Scope.bot(bot)) is HALTED


def test_the_drawdown_peak_and_day_start_survive_a_restart(first: Process, restart: Any) -> None:
    bot = first.bot()
    first.fill(bot, Side.BUY, "10", "100")
    first.fill(bot, Side.SELL, "10", "120")  # realized +200: peak 1200 (seen at a fill)
    first.clock.advance(timedelta(days=1).total_seconds())
    first.fill(bot, Side.BUY, "10", "120")  # a new day, starting at 1200
    second = restart()
    second.bot()
    # 1200 - 60 = 1140: 5% under the day's start of 1200 (it would be 14% profit on capital)
    [trip] = second.engine.on_price(ACCOUNT, ETH.symbol, D(114))
    assert (trip.reading.breaker, trip.reading.value) == (Breaker.DAILY_LOSS, D(5))


def test_a_peak_seen_only_through_marks_survives_a_restart(first: Process, restart: Any) -> None:
    bot = first.bot(max_daily_loss_pct="none")
    first.fill(bot, Side.BUY, "10", "100")
    first.engine.on_price(ACCOUNT, ETH.symbol, D(120))  # equity 1200: the peak
    second = restart()
    second.bot(max_daily_loss_pct="none")
    # 900 is 25% under the peak of 1200 (10% under the 1000 last saved)
    trips = second.engine.on_price(ACCOUNT, ETH.symbol, D(90))
    assert [t.reading.breaker for t in trips] == [Breaker.DRAWDOWN]


def test_the_portfolio_peak_survives_a_restart(first: Process, restart: Any) -> None:
    loose: dict[str, Any] = {"max_daily_loss_pct": "none", "max_drawdown_pct": "none"}
    bot = first.bot(**loose)
    first.fill(bot, Side.BUY, "10", "100")
    assert first.fill(bot, Side.SELL, "10", "70") == []  # realized -300: user 30% down
    second = restart()
    second.bot(**loose)
    second.fill(bot, Side.BUY, "10", "100")
    trips = second.fill(bot, Side.SELL, "10", "90")  # -100 more: 600, 40% under 1000
    assert [(t.scope, t.reading.breaker) for t in trips] == [
        (Scope.user("alice"), Breaker.PORTFOLIO_DRAWDOWN)
    ]


def test_decimals_stay_exact_through_the_stored_book(first: Process, restart: Any) -> None:
    bot = first.bot()
    first.fill(bot, Side.BUY, "0.1", "100.1", fee="0.01")
    first.fill(bot, Side.BUY, "0.2", "100.2", fee="0.02")
    original = first.engine.book(bot).positions[ETH.symbol]
    assert original.qty == D("0.3")  # not 0.30000000000000004
    # (0.1 * 100.1 + 0.2 * 100.2) / 0.3 = 30.05 / 0.3, a 28-digit Decimal
    assert original.avg_price == D("30.05") / D("0.3")
    second = restart()
    second.bot()
    restored = second.engine.book(bot).positions[ETH.symbol]
    assert str(restored.qty) == "0.3"
    assert restored == original  # every digit of the average price too
    assert second.engine.book(bot).realized == D("-0.03")
    assert second.store.load_bot(bot) is not None


# -- trips and resets --------------------------------------------------------------------------


def test_trips_are_recorded_and_a_reset_marks_them(first: Process) -> None:
    bot = first.bot()
    first.fill(bot, Side.BUY, "10", "100")
    first.engine.on_price(ACCOUNT, ETH.symbol, D("94.9"))  # equity 949: 5.1% down
    [trip] = first.store.trips(Scope.bot(bot))
    assert trip.scope == Scope.bot(bot)
    assert (trip.breaker, trip.value, trip.limit) == (Breaker.DAILY_LOSS, D("5.1"), D(5))
    assert trip.tripped_at == START
    assert (trip.reset_at, trip.reset_by, trip.reset_reason) == (None, None, None)
    first.clock.advance(3600)
    first.engine.reset(Scope.bot(bot), actor="operator:ops", reason="venue outage, checked")
    [trip] = first.store.trips(Scope.bot(bot))
    assert trip.reset_at == START + timedelta(hours=1)
    assert (trip.reset_by, trip.reset_reason) == ("operator:ops", "venue outage, checked")
    assert first.store.states() == {}


def test_trips_of_several_scopes_newest_first(first: Process) -> None:
    loose: dict[str, Any] = {"max_daily_loss_pct": "none", "max_drawdown_pct": "none"}
    bot = first.bot(**loose)
    for _ in range(3):
        first.round_trip(bot, "100", "99")
    first.engine.reset(Scope.bot(bot), actor="operator", reason="again")
    first.clock.advance(60)
    first.fill(bot, Side.BUY, "10", "100")
    first.engine.on_price(ACCOUNT, ETH.symbol, D(60))  # 997 - 400 = 597: 40.3% under 1000
    trips = first.store.trips()
    assert [(str(t.scope), t.breaker) for t in trips] == [
        ("user:alice", Breaker.PORTFOLIO_DRAWDOWN),
        ("bot:b1", Breaker.CONSECUTIVE_LOSSES),
    ]
    assert trips[0].reset_at is None
    assert trips[1].reset_by == "operator"
    assert first.store.trips(Scope.user("alice"), limit=5) == trips[:1]


def test_trips_of_a_set_of_scopes_are_picked_by_the_database(first: Process) -> None:
    a, b, c = Scope.bot("a"), Scope.bot("b"), Scope.user("c")
    for minute, scope in enumerate([a, b, c, a, b, c]):
        at = START + timedelta(minutes=minute)
        first.store.add_trip(TripRecord(scope, Breaker.CONSECUTIVE_LOSSES, D(3), D(3), at))
    # the limit counts the scopes' trips, not every trip: the newest 3 of a and c
    assert [t.scope for t in first.store.trips({a, c}, limit=3)] == [c, a, c]
    assert [t.tripped_at.minute for t in first.store.trips([b])] == [4, 1]
    assert first.store.trips(set()) == []  # no scopes: no trips (not every scope's)
    assert len(first.store.trips()) == 6


def test_a_reset_rebase_survives_a_restart(first: Process, restart: Any) -> None:
    bot = first.bot()
    for _ in range(3):
        first.round_trip(bot, "100", "99")
    first.engine.reset(Scope.bot(bot), actor="operator", reason="reviewed")
    second = restart()
    second.bot()
    assert second.round_trip(bot, "100", "99") == []  # a run of 1, not 4
    assert {r.breaker: r.value for r in second.engine.readings(bot)}[
        Breaker.CONSECUTIVE_LOSSES
    ] == 1


# -- closed trades -----------------------------------------------------------------------------


def test_closed_trades_are_stored_with_the_bots_mode(first: Process, restart: Any) -> None:
    bot = first.bot("b1")
    first.fill(bot, Side.BUY, "1", "100", fee="0.1")
    first.clock.advance(60)
    first.fill(bot, Side.SELL, "1", "110", fee="0.11")  # 10 - 0.1 - 0.11 = 9.79
    opened, closed = START, START + timedelta(seconds=60)
    assert first.store.closed_trades(bot, "paper") == [
        StoredTrade(ETH.symbol, D("9.79"), opened, closed)
    ]
    assert first.store.closed_trades(bot, "live") == []
    first.store.promote(bot, first.clock.now())
    second = restart()
    second.bot("b1", mode=Mode.LIVE)
    second.clock.advance(60)
    second.fill(bot, Side.BUY, "1", "100")
    second.fill(bot, Side.SELL, "0.5", "99")  # a partial close is not a trade
    second.fill(bot, Side.SELL, "0.5", "98")  # -0.5 - 1 = -1.5
    later = closed + timedelta(seconds=60)
    assert second.store.closed_trades(bot, "live") == [
        StoredTrade(ETH.symbol, D("-1.5"), later, later)
    ]
    assert second.store.closed_trades(bot, "paper") == [  # the paper record is kept apart
        StoredTrade(ETH.symbol, D("9.79"), opened, closed)
    ]
    [record] = second.store.bots()
    assert (record.name, record.mode, record.promoted_at) == (bot, "live", closed)


# -- another process ---------------------------------------------------------------------------


def test_reload_states_picks_up_a_halt_from_another_process(first: Process, restart: Any) -> None:
    bot = first.bot()
    first.engine.on_price(ACCOUNT, ETH.symbol, D(100))
    assert not halted(first.buy(bot))
    cli = restart()  # `tradeguard risk halt` in another process
    cli.engine.set_state(Scope.user("alice"), HALTED, actor="operator", reason="cli halt")
    assert first.engine.state(Scope.user("alice")) is ACTIVE  # not seen until reloaded
    first.engine.reload_states()
    assert first.engine.state(Scope.user("alice")) is HALTED
    assert first.engine.effective_state(bot) is HALTED
    assert halted(first.buy(bot))
    cli.engine.reset(Scope.user("alice"), actor="operator", reason="cli resume")
    first.engine.reload_states()
    assert first.engine.effective_state(bot) is ACTIVE
    assert not halted(first.buy(bot))


def test_a_bot_keeps_its_user_and_account(first: Process, restart: Any) -> None:
    first.bot("b1", user="alice")
    second = restart()
    second.engine.add_account("paper:other", MARKETS)
    limits = bot_limits_from({"capital": 1000, "symbols": [ETH.symbol]})
    with pytest.raises(ConfigError, match="belongs to user alice on account paper:alice"):
        second.engine.register_bot("b1", user="bob", account=ACCOUNT, limits=limits)
    with pytest.raises(ConfigError, match="belongs to user alice on account paper:alice"):
        second.engine.register_bot("b1", user="alice", account="paper:other", limits=limits)
    assert second.engine.bots() == []
    loaded = second.store.load_bot("b1")
    assert loaded is not None
    assert (loaded.user, loaded.account) == ("alice", ACCOUNT)
    second.engine.register_bot("b1", user="alice", account=ACCOUNT, limits=limits)
