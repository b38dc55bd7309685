"""Circuit breakers through `RiskEngine`: fills and marks drive them, a trip halts its scope at
once and says what to cancel and close, a person resets it.

The engine runs in memory with a `ManualClock` and a `MemorySink`. Fills carry no fee unless a
test says so, so every equity is capital + (mark - entry) * quantity, worked out in comments.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import DomainEvent, MemorySink
from tradeguard.risk import (
    Approval,
    Breaker,
    Denial,
    OrderIntent,
    Reason,
    RiskEngine,
    Scope,
    TradingState,
    Trip,
    bot_limits_from,
)
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
BTC = Market("BTC/USDT", "BTCUSDT", "BTC", "USDT", MarketKind.SPOT, D("0.01"), D("0.00001"))
PERP = Market(
    "ETH/USDT:USDT",
    "ETHUSDT",
    "ETH",
    "USDT",
    MarketKind.SWAP,
    D("0.01"),
    D("0.001"),
    settle="USDT",
)
MARKETS = {m.symbol: m for m in (ETH, BTC, PERP)}
ACCOUNT = "paper:alice"
START = datetime(2026, 1, 1, tzinfo=UTC)
HALTED, ACTIVE, REDUCING = TradingState.HALTED, TradingState.ACTIVE, TradingState.REDUCING


class Desk:
    """A risk engine in memory on one account holding plenty of cash, and short ways to feed
    it fills and marks."""

    def __init__(self) -> None:
        self.clock = ManualClock(START)
        self.events = MemorySink()
        self.engine = RiskEngine(clock=self.clock, events=self.events)
        cash = Balance({"USDT": BalanceLine(D(1_000_000), D(0))})
        self.engine.add_account(ACCOUNT, MARKETS, cash)
        self._ids = itertools.count(1)

    def bot(self, name: str = "b1", user: str = "alice", **raw: Any) -> str:
        raw.setdefault("symbols", list(MARKETS))
        limits = bot_limits_from({"capital": 1000, **raw})
        self.engine.register_bot(name, user=user, account=ACCOUNT, limits=limits)
        return name

    def fill(
        self,
        bot: str,
        side: Side,
        amount: str,
        price: str,
        *,
        symbol: str = ETH.symbol,
        cid: str | None = None,
    ) -> list[Trip]:
        n = next(self._ids)
        trade = Trade(
            f"t{n}", f"v{n}", cid, symbol, side, D(price), D(amount), D(0), "USDT",
            Liquidity.TAKER, self.clock.now(),
        )  # fmt: skip
        return self.engine.on_fill(bot, trade)

    def round_trip(self, bot: str, entry: str, exit_: str) -> list[Trip]:
        """Buy 1 ETH at `entry`, sell it at `exit_`: one closed trade of exit_ - entry."""
        assert self.fill(bot, Side.BUY, "1", entry) == []
        return self.fill(bot, Side.SELL, "1", exit_)

    def mark(self, price: str, symbol: str = ETH.symbol) -> list[Trip]:
        return self.engine.on_price(ACCOUNT, symbol, D(price))

    def order(
        self, bot: str, side: Side, amount: str, price: str | None = None, **kw: Any
    ) -> Approval | Denial:
        kw.setdefault("symbol", ETH.symbol)
        intent = OrderIntent(
            client_order_id=f"o{next(self._ids)}",
            side=side.value,
            type=(OrderType.LIMIT if price else OrderType.MARKET).value,
            amount=D(amount),
            price=None if price is None else D(price),
            **kw,
        )
        return self.engine.pre_trade(bot, intent)

    def named(self, name: str) -> list[DomainEvent]:
        return [e for e in self.events.events if e.name.value == name]

    def readings(self, bot: str) -> dict[Breaker, Decimal]:
        return {r.breaker: r.value for r in self.engine.readings(bot)}


@pytest.fixture
def desk() -> Desk:
    return Desk()


def approved(decision: Approval | Denial) -> Approval:
    assert isinstance(decision, Approval), decision
    return decision


# -- consecutive losses ------------------------------------------------------------------------


def test_consecutive_losses_trip_on_the_third_losing_trade(desk: Desk) -> None:
    bot = desk.bot()
    assert desk.round_trip(bot, "100", "99") == []  # -1
    assert desk.round_trip(bot, "100", "98") == []  # -2
    assert desk.engine.state(Scope.bot(bot)) is ACTIVE
    assert desk.readings(bot)[Breaker.CONSECUTIVE_LOSSES] == 2
    trips = desk.round_trip(bot, "100", "99.5")  # -0.5: the third loss in a row
    assert len(trips) == 1
    trip = trips[0]
    assert trip.scope == Scope.bot(bot)
    assert (trip.reading.breaker, trip.reading.value, trip.reading.limit) == (
        Breaker.CONSECUTIVE_LOSSES,
        D(3),
        D(3),
    )
    assert trip.at == START
    assert desk.engine.state(Scope.bot(bot)) is HALTED
    assert desk.engine.effective_state(bot) is HALTED


def test_a_win_in_between_resets_the_loss_run(desk: Desk) -> None:
    bot = desk.bot()
    assert desk.round_trip(bot, "100", "99") == []
    assert desk.round_trip(bot, "100", "99") == []
    assert desk.round_trip(bot, "100", "100.01") == []  # a win: the run is over
    assert desk.readings(bot)[Breaker.CONSECUTIVE_LOSSES] == 0
    assert desk.round_trip(bot, "100", "99") == []
    assert desk.round_trip(bot, "100", "99") == []
    assert desk.engine.state(Scope.bot(bot)) is ACTIVE  # four losses, never three in a row
    [trip] = desk.round_trip(bot, "100", "99")
    assert trip.reading.breaker is Breaker.CONSECUTIVE_LOSSES


def test_a_losing_partial_close_is_not_a_losing_trade(desk: Desk) -> None:
    bot = desk.bot()
    desk.round_trip(bot, "100", "99")
    desk.round_trip(bot, "100", "99")
    desk.fill(bot, Side.BUY, "2", "100")
    assert desk.fill(bot, Side.SELL, "1", "99") == []  # the trade is still open
    assert desk.readings(bot)[Breaker.CONSECUTIVE_LOSSES] == 2
    [trip] = desk.fill(bot, Side.SELL, "1", "99")
    assert trip.reading.breaker is Breaker.CONSECUTIVE_LOSSES


# -- daily loss --------------------------------------------------------------------------------


def test_daily_loss_trips_at_exactly_5_percent_under_the_days_start(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "10", "100")  # equity 1000 = the day's start (the capital)
    # mark 95.01: equity 1000 + (95.01 - 100) * 10 = 950.1, a loss of 4.99%
    assert desk.mark("95.01") == []
    assert desk.readings(bot)[Breaker.DAILY_LOSS] == D("4.99")
    assert desk.engine.state(Scope.bot(bot)) is ACTIVE
    # mark 95: equity 950, exactly 5%
    [trip] = desk.mark("95")
    assert (trip.reading.breaker, trip.reading.value, trip.reading.limit) == (
        Breaker.DAILY_LOSS,
        D(5),
        D(5),
    )
    assert desk.engine.state(Scope.bot(bot)) is HALTED


def test_the_day_rolls_at_utc_midnight_from_the_last_equity_of_the_day(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "10", "100")
    desk.clock.advance(timedelta(hours=23, minutes=59, seconds=59).total_seconds())
    # 23:59:59 the same day: 950.1 is 4.99% under the capital, no trip
    assert desk.mark("95.01") == []
    desk.clock.advance(1)
    assert desk.clock.now() == datetime(2026, 1, 2, tzinfo=UTC)
    # midnight: the new day starts from 950.1 (the last equity of 1 January), not from 1000
    assert desk.mark("95.01") == []
    assert desk.readings(bot)[Breaker.DAILY_LOSS] == 0
    # mark 90.26: equity 902.6; (950.1 - 902.6) / 950.1 = 4.9995%: no trip (from 1000 it would
    # have been 9.74%)
    assert desk.mark("90.26") == []
    assert desk.engine.state(Scope.bot(bot)) is ACTIVE
    # mark 90.2595: equity 902.595 = 950.1 * 0.95, exactly 5% under the day's start
    [trip] = desk.mark("90.2595")
    assert (trip.reading.breaker, trip.reading.value) == (Breaker.DAILY_LOSS, D(5))


def test_a_new_day_does_not_trip_on_yesterdays_losses(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "10", "100")
    assert desk.mark("96") == []  # 4% down on the day
    desk.clock.advance(timedelta(days=1).total_seconds())
    assert desk.mark("95") == []  # 5% under the capital, but 1.04% under 960
    assert desk.readings(bot)[Breaker.DAILY_LOSS] == D(10) / D(960) * 100


# -- drawdown ----------------------------------------------------------------------------------


def test_drawdown_trips_at_25_percent_from_the_peak(desk: Desk) -> None:
    bot = desk.bot(max_daily_loss_pct="none")
    desk.fill(bot, Side.BUY, "10", "100")
    assert desk.mark("120") == []  # equity 1200: the peak
    # mark 90.01: equity 900.1; (1200 - 900.1) / 1200 = 24.99%
    assert desk.mark("90.01") == []
    assert desk.engine.state(Scope.bot(bot)) is ACTIVE
    [trip] = desk.mark("90")  # equity 900: 300 / 1200 = 25%
    assert (trip.reading.breaker, trip.reading.value, trip.reading.limit) == (
        Breaker.DRAWDOWN,
        D(25),
        D(25),
    )


def test_portfolio_drawdown_over_two_bots_halts_the_user(desk: Desk) -> None:
    # each bot's own drawdown limit is 50% and its daily loss off: only the portfolio trips
    loose: dict[str, Any] = {"max_daily_loss_pct": "none", "max_drawdown_pct": 50}
    eth_bot = desk.bot("eth-bot", **loose)
    btc_bot = desk.bot("btc-bot", **loose)
    other = desk.bot("bob-bot", user="bob")
    desk.fill(eth_bot, Side.BUY, "10", "100")  # 1000 in ETH
    desk.fill(btc_bot, Side.BUY, "1", "1000", symbol=BTC.symbol)  # 1000 in BTC
    # the user's equity: 2000 at the peak
    assert desk.mark("55") == []  # eth-bot 550 (45% down); user 1550, 22.5% down
    assert desk.mark("651", BTC.symbol) == []  # btc-bot 651 (34.9%); user 1201, 39.95% down
    assert desk.engine.state(Scope.user("alice")) is ACTIVE
    [trip] = desk.mark("650", BTC.symbol)  # btc-bot 650; user 1200: (2000 - 1200) / 2000 = 40%
    assert trip.scope == Scope.user("alice")
    assert (trip.reading.breaker, trip.reading.value, trip.reading.limit) == (
        Breaker.PORTFOLIO_DRAWDOWN,
        D(40),
        D(40),
    )
    assert desk.engine.state(Scope.user("alice")) is HALTED
    # neither bot tripped on its own: the user's halt holds both
    assert desk.engine.state(Scope.bot(eth_bot)) is ACTIVE
    assert desk.engine.state(Scope.bot(btc_bot)) is ACTIVE
    desk.mark("100")
    desk.mark("1000", BTC.symbol)
    for bot in (eth_bot, btc_bot):
        assert desk.engine.effective_state(bot) is HALTED
        denial = desk.order(bot, Side.BUY, "0.1", "100")
        assert isinstance(denial, Denial)
        assert denial.reason is Reason.HALTED
        assert "HALTED for user:alice" in denial.message
    # another user's bot trades on
    approved(desk.order(other, Side.BUY, "0.1", "100"))


# -- warnings and trip events ------------------------------------------------------------------


def test_a_warning_at_80_percent_once_until_rearmed(desk: Desk) -> None:
    bot = desk.bot(max_daily_loss_pct="none")  # drawdown 25%: warned at 20%
    desk.fill(bot, Side.BUY, "10", "100")  # peak 1000
    desk.mark("80.01")  # 19.99%: no warning
    assert desk.named("risk.breaker.warning") == []
    desk.mark("80")  # 20%
    [warning] = desk.named("risk.breaker.warning")
    assert warning.subject == "bot:b1"
    assert warning.details == {"breaker": "drawdown", "value": D(20), "limit": D(25)}
    desk.mark("79")  # 21%: still over the warning level, warned already
    desk.mark("80")
    assert len(desk.named("risk.breaker.warning")) == 1
    desk.mark("85")  # 15%: back under 20%, re-armed
    assert len(desk.named("risk.breaker.warning")) == 1
    desk.mark("78")  # 22%: warned again
    warnings = desk.named("risk.breaker.warning")
    assert len(warnings) == 2
    assert warnings[1].details["value"] == D(22)
    assert desk.engine.state(Scope.bot(bot)) is ACTIVE
    assert desk.named("risk.breaker.tripped") == []


def test_a_trip_emits_tripped_and_state_changed_with_details(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "10", "100")
    approved(desk.order(bot, Side.BUY, "1", "99"))
    desk.events.events.clear()
    desk.mark("95")
    # the state changes first: new orders are refused before anyone hears of the trip
    assert desk.events.names() == ["risk.state.changed", "risk.breaker.tripped"]
    [changed] = desk.named("risk.state.changed")
    assert (changed.actor, changed.subject, changed.at) == ("system", "bot:b1", START)
    assert changed.details == {
        "from": "ACTIVE",
        "to": "HALTED",
        "reason": "breaker daily_loss",
        "orders_to_cancel": 1,
    }
    [tripped] = desk.named("risk.breaker.tripped")
    assert (tripped.actor, tripped.subject) == ("system", "bot:b1")
    assert tripped.details == {
        "breaker": "daily_loss",
        "value": D(5),
        "limit": D(5),
        "orders_to_cancel": 1,
    }


def test_an_already_halted_bot_does_not_trip_again(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "10", "100")
    assert len(desk.mark("95")) == 1
    assert desk.mark("94") == []
    assert len(desk.named("risk.breaker.tripped")) == 1


# -- what a trip asks for ----------------------------------------------------------------------


def test_a_trip_lists_the_orders_to_cancel_and_the_positions_to_close(desk: Desk) -> None:
    bot = desk.bot(close_positions_on_trip=True)
    desk.fill(bot, Side.BUY, "10", "100")
    desk.fill(bot, Side.SELL, "2", "100", symbol=PERP.symbol)
    sell = approved(desk.order(bot, Side.SELL, "2", "101"))
    buy = approved(desk.order(bot, Side.BUY, "1", "99"))
    [trip] = desk.mark("95")  # equity 950 (the perp short is marked at its entry): 5%
    assert [(name, o.client_order_id) for name, o in trip.cancel] == [
        (bot, sell.request.client_order_id),
        (bot, buy.request.client_order_id),
    ]
    assert trip.close == ((bot, ETH.symbol, D(10)), (bot, PERP.symbol, D(-2)))


def test_without_close_positions_on_trip_nothing_is_to_close(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "10", "100")
    [trip] = desk.mark("95")
    assert trip.cancel == ()
    assert trip.close == ()


def test_a_user_trip_lists_the_orders_of_all_its_bots(desk: Desk) -> None:
    loose: dict[str, Any] = {
        "max_daily_loss_pct": "none",
        "max_drawdown_pct": 90,
        "close_positions_on_trip": True,
    }
    a, b = desk.bot("a", **loose), desk.bot("b", **loose)
    desk.fill(a, Side.BUY, "10", "100")
    desk.fill(b, Side.BUY, "10", "100")
    order_a = approved(desk.order(a, Side.BUY, "0.5", "99"))
    order_b = approved(desk.order(b, Side.SELL, "0.5", "101"))
    [trip] = desk.mark("60")  # each 600; 1200 / 2000: 40%
    assert trip.scope == Scope.user("alice")
    assert {(n, o.client_order_id) for n, o in trip.cancel} == {
        (a, order_a.request.client_order_id),
        (b, order_b.request.client_order_id),
    }
    assert set(trip.close) == {(a, ETH.symbol, D(10)), (b, ETH.symbol, D(10))}


def test_closing_order_is_a_market_order_for_the_whole_position_while_halted(desk: Desk) -> None:
    bot = desk.bot(close_positions_on_trip=True)
    desk.fill(bot, Side.BUY, "10", "100")
    [trip] = desk.mark("95")
    # an ordinary order is refused
    denial = desk.order(bot, Side.SELL, "10")
    assert isinstance(denial, Denial)
    assert denial.reason is Reason.HALTED
    for _, symbol, qty in trip.close:
        close = desk.engine.closing_order(bot, symbol, "close-1")
        assert close is not None
        assert (close.request.side, close.request.type) == (Side.SELL, OrderType.MARKET)
        assert (close.request.amount, close.request.symbol) == (qty, ETH.symbol)
        assert close.request.reduce_only is False  # spot: there is no reduce-only
        assert close.reference == D(95)
    assert set(desk.engine.book(bot).orders) == {"close-1"}  # booked
    desk.fill(bot, Side.SELL, "10", "95", cid="close-1")
    assert desk.engine.book(bot).qty(ETH.symbol) == 0
    assert desk.engine.book(bot).orders == {}
    assert desk.engine.closing_order(bot, ETH.symbol, "close-2") is None  # nothing left
    assert desk.engine.state(Scope.bot(bot)) is HALTED


def test_closing_order_on_a_perpetual_short_is_a_reduce_only_buy(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.SELL, "1.5", "100", symbol=PERP.symbol)
    desk.engine.set_state(Scope.bot(bot), HALTED, actor="operator", reason="emergency stop")
    close = desk.engine.closing_order(bot, PERP.symbol, "close-1")
    assert close is not None
    assert close.request.side is Side.BUY
    assert close.request.amount == D("1.5")
    assert close.request.reduce_only is True


# -- reset -------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reset_needs_a_reason(desk: Desk, reason: str) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "10", "100")
    desk.mark("95")
    with pytest.raises(ConfigError, match="say why"):
        desk.engine.reset(Scope.bot(bot), actor="operator", reason=reason)
    assert desk.engine.state(Scope.bot(bot)) is HALTED
    assert desk.named("risk.reset") == []


def test_a_reset_rebases_the_daily_loss_and_drawdown(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "10", "100")
    desk.mark("95")  # tripped at 950
    desk.clock.advance(60)
    previous = desk.engine.reset(Scope.bot(bot), actor="operator:ops", reason="venue checked")
    assert previous is HALTED
    assert desk.engine.state(Scope.bot(bot)) is ACTIVE
    [reset] = desk.named("risk.reset")
    assert (reset.actor, reset.subject) == ("operator:ops", "bot:b1")
    assert reset.details == {"from": "HALTED", "reason": "venue checked"}
    # the day and the peak start again at 950: a further loss of 1 does not trip
    assert desk.mark("94.9") == []  # 949: 1 / 950 = 0.105%
    assert desk.readings(bot)[Breaker.DAILY_LOSS] == D(1) / D(950) * 100
    assert desk.readings(bot)[Breaker.DRAWDOWN] == D(1) / D(950) * 100
    assert desk.engine.state(Scope.bot(bot)) is ACTIVE
    # the breaker is re-based, not off: 5% under 950 is 902.5
    assert desk.mark("90.26") == []
    [trip] = desk.mark("90.25")
    assert trip.reading.breaker is Breaker.DAILY_LOSS


def test_a_reset_rebases_the_loss_run(desk: Desk) -> None:
    bot = desk.bot()
    for _ in range(3):
        trips = desk.round_trip(bot, "100", "99")
    assert trips[0].reading.breaker is Breaker.CONSECUTIVE_LOSSES
    desk.engine.reset(Scope.bot(bot), actor="operator", reason="strategy reviewed")
    assert desk.round_trip(bot, "100", "99") == []
    assert desk.readings(bot)[Breaker.CONSECUTIVE_LOSSES] == 1
    assert desk.round_trip(bot, "100", "99") == []
    assert len(desk.round_trip(bot, "100", "99")) == 1


def test_a_user_reset_rebases_the_portfolio_peak(desk: Desk) -> None:
    loose: dict[str, Any] = {"max_daily_loss_pct": "none", "max_drawdown_pct": 90}
    bot = desk.bot(**loose)
    desk.fill(bot, Side.BUY, "10", "100")
    [trip] = desk.mark("60")  # 600 / 1000: 40%
    assert trip.scope == Scope.user("alice")
    desk.engine.reset(Scope.user("alice"), actor="operator", reason="accepted the loss")
    assert desk.engine.effective_state(bot) is ACTIVE
    assert desk.mark("59") == []  # 590 against a peak of 600
    assert desk.engine.state(Scope.user("alice")) is ACTIVE


# -- REDUCING ----------------------------------------------------------------------------------


def test_reducing_cancels_growth_orders_and_keeps_shrinking_ones(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "2", "100", symbol=PERP.symbol)  # long 2
    desk.mark("100", PERP.symbol)
    perp = {"symbol": PERP.symbol}
    grow = approved(desk.order(bot, Side.BUY, "1", "100", **perp))
    shrink = approved(desk.order(bot, Side.SELL, "1.5", "101", **perp))
    # with the 1.5 already selling, another 1 would take the long of 2 through zero
    past = approved(desk.order(bot, Side.SELL, "1", "101", **perp))
    cancel = desk.engine.set_state(Scope.bot(bot), REDUCING, actor="operator", reason="reduce only")
    assert [(name, o.client_order_id) for name, o in cancel] == [
        (bot, grow.request.client_order_id),
        (bot, past.request.client_order_id),
    ]
    assert shrink.request.client_order_id not in {o.client_order_id for _, o in cancel}
    assert desk.engine.effective_state(bot) is REDUCING
    [changed] = desk.named("risk.state.changed")
    assert changed.actor == "operator"
    assert changed.details == {
        "from": "ACTIVE",
        "to": "REDUCING",
        "reason": "reduce only",
        "orders_to_cancel": 2,
    }
    for _, o in cancel:
        desk.engine.order_ended(bot, o.client_order_id)
    # a new growth order is refused; one that shrinks (0.5 + 1.5 open = the long of 2) passes
    denial = desk.order(bot, Side.BUY, "0.1", "100", **perp)
    assert isinstance(denial, Denial)
    assert denial.reason is Reason.REDUCING
    approved(desk.order(bot, Side.SELL, "0.5", "101", **perp))
    denial = desk.order(bot, Side.SELL, "0.001", "101", **perp)
    assert isinstance(denial, Denial)
    assert denial.reason is Reason.REDUCING


def test_halting_by_hand_cancels_every_order(desk: Desk) -> None:
    bot = desk.bot()
    desk.fill(bot, Side.BUY, "2", "100", symbol=PERP.symbol)
    desk.mark("100", PERP.symbol)
    grow = approved(desk.order(bot, Side.BUY, "1", "100", symbol=PERP.symbol))
    shrink = approved(desk.order(bot, Side.SELL, "1", "101", symbol=PERP.symbol))
    cancel = desk.engine.set_state(Scope.bot(bot), HALTED, actor="operator", reason="stop")
    assert [o.client_order_id for _, o in cancel] == [
        grow.request.client_order_id,
        shrink.request.client_order_id,
    ]
    with pytest.raises(ValueError, match="reset"):
        desk.engine.set_state(Scope.bot(bot), ACTIVE, actor="operator", reason="go")
