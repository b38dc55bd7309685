"""What a bot's orders are checked against from the other bots (their gross exposure, the cash
their open orders hold) is worked out once per change and kept: these check that it follows
every change — another bot's order, fill, cancel, and a mark moving — and that the book's open
totals go back to exact zeros."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tradeguard.core.clock import ManualClock
from tradeguard.core.events import MemorySink
from tradeguard.risk import (
    Approval,
    BotBook,
    BotLimits,
    Denial,
    OpenOrder,
    OrderIntent,
    Reason,
    RiskEngine,
    UserLimits,
)
from tradeguard.venues.types import Balance, BalanceLine, Liquidity, Market, MarketKind, Side, Trade

D = Decimal
ETH = Market("ETH/USDT", "ETHUSDT", "ETH", "USDT", MarketKind.SPOT, D("0.01"), D("0.001"))
BTC = Market("BTC/USDT", "BTCUSDT", "BTC", "USDT", MarketKind.SPOT, D("0.01"), D("0.001"))
AT = datetime(2026, 1, 1, tzinfo=UTC)


def engine(usdt: int, *, user_exposure: int | None = None) -> RiskEngine:
    """Bots "a" (ETH) and "b" (BTC) of one user on one account; both at 100."""
    risk = RiskEngine(clock=ManualClock(), events=MemorySink())
    balance = Balance({"USDT": BalanceLine(D(usdt), D(0))})
    risk.add_account("acc", {m.symbol: m for m in (ETH, BTC)}, balance)
    ceiling = None if user_exposure is None else D(user_exposure)
    risk.set_user_limits("u", UserLimits(max_gross_exposure=ceiling))
    for name, market in (("a", ETH), ("b", BTC)):
        limits = BotLimits(
            capital=D(10_000), symbols=frozenset({market.symbol}), blocked_zones=frozenset()
        )
        risk.register_bot(name, user="u", account="acc", limits=limits)
        risk.on_price("acc", market.symbol, D(100))
    return risk


def buy(cid: str, market: Market, amount: str, price: str = "100") -> OrderIntent:
    return OrderIntent(cid, market.symbol, "buy", "limit", D(amount), D(price))


def fill(risk: RiskEngine, bot: str, cid: str, market: Market, amount: str) -> None:
    trade = Trade(
        f"t-{cid}-{amount}", "v", cid, market.symbol, Side.BUY, D(100), D(amount), D(0), "USDT",
        Liquidity.TAKER, AT,
    )  # fmt: skip
    assert risk.on_fill(bot, trade) == []


def reason(decision: Approval | Denial) -> Reason | None:
    return decision.reason if isinstance(decision, Denial) else None


def test_another_bots_exposure_follows_its_marks_and_fills() -> None:
    risk = engine(100_000, user_exposure=1000)
    assert risk.pre_trade("b", buy("b1", BTC, "5"))
    fill(risk, "b", "b1", BTC, "5")  # b: 5 BTC at 100 = 500
    assert risk.pre_trade("a", buy("a1", ETH, "4"))  # 400 + 500 = 900: b's exposure is kept
    risk.order_ended("a", "a1")
    risk.on_price("acc", BTC.symbol, D(130))  # b: 650
    over = risk.pre_trade("a", buy("a2", ETH, "4"))
    assert reason(over) is Reason.USER_EXPOSURE, over
    assert "could reach 1050" in over.message  # type: ignore[union-attr]
    risk.on_price("acc", BTC.symbol, D(100))  # b: 500 again
    assert risk.pre_trade("a", buy("a3", ETH, "4"))
    risk.order_ended("a", "a3")
    assert risk.pre_trade("b", buy("b2", BTC, "1"))  # b: 500 + an open order of 100
    assert risk.pre_trade("a", buy("a6", ETH, "4"))  # 400 + 600, at the ceiling
    risk.order_ended("a", "a6")
    fill(risk, "b", "b2", BTC, "0.5")
    # b: worst 6 BTC (5.5 held, 0.5 still open) = 600; a: 401
    assert reason(risk.pre_trade("a", buy("a4", ETH, "4.01"))) is Reason.USER_EXPOSURE
    risk.order_ended("b", "b2")  # the rest canceled: b holds 5.5 BTC = 550
    assert risk.pre_trade("a", buy("a5", ETH, "4.5"))  # 450 + 550 = 1000, at the ceiling


def test_the_cash_other_bots_orders_hold_follows_their_orders_and_fills() -> None:
    risk = engine(1000)
    assert risk.pre_trade("b", buy("b1", BTC, "5"))  # holds 500 USDT
    short = risk.pre_trade("a", buy("a1", ETH, "6"))
    assert reason(short) is Reason.BALANCE, short
    assert "with 500 held by open orders" in short.message  # type: ignore[union-attr]
    fill(risk, "b", "b1", BTC, "2")  # paid 200: 800 USDT left, 300 held
    assert reason(risk.pre_trade("a", buy("a2", ETH, "5.01"))) is Reason.BALANCE
    assert risk.pre_trade("a", buy("a3", ETH, "5"))  # 300 + 500 = 800, all of it
    risk.order_ended("a", "a3")
    risk.order_ended("b", "b1")  # nothing held
    assert risk.pre_trade("a", buy("a4", ETH, "8"))


def test_open_totals_follow_orders_and_return_to_exact_zeros() -> None:
    book = BotBook()
    third = D(1) / 3  # not exact: the sums round on the way
    for cid, remaining in (("x", third), ("y", D("0.5")), ("z", third)):
        book.add_order(
            OpenOrder(cid, ETH.symbol, MarketKind.SPOT, Side.BUY, remaining, D(7), False)
        )
    book.add_order(OpenOrder("s", ETH.symbol, MarketKind.SPOT, Side.SELL, D(1), D(9), False))
    buys = book.open_symbols()[ETH.symbol].buy
    assert (buys.count, buys.amount) == (3, third + D("0.5") + third)
    assert buys.value == third * 7 + D("3.5") + third * 7
    value = buys.value
    book.fill_order("y", D("0.25"))
    assert (buys.count, buys.value) == (3, value - D("1.75"))
    for cid in ("x", "y", "z"):
        book.end_order(cid)
    assert (buys.count, buys.amount, buys.value) == (0, 0, 0)  # exact, not 1E-27
    assert book.open_amount(ETH.symbol, Side.SELL) == 1
    book.end_order("s")
    assert book.open_symbols() == {}


def test_the_book_version_counts_every_change_and_moves_of_what_it_holds() -> None:
    book = BotBook()
    seen = [book.version]

    def changed() -> bool:
        seen.append(book.version)
        return seen[-1] != seen[-2]

    book.add_order(OpenOrder("x", ETH.symbol, MarketKind.SPOT, Side.BUY, D(2), D(7), False))
    assert changed()
    book.fill_order("x", D(1))
    assert changed()
    book.apply_fill(ETH.symbol, Side.BUY, D(1), D(7), D(0), D(0), AT)
    assert changed()
    book.revalue(BTC.symbol)  # neither held nor ordered
    assert not changed()
    book.revalue(ETH.symbol)
    assert changed()
    book.end_order("x")
    assert changed()
    book.end_order("x")  # not open any more: nothing changes
    assert not changed()
    book.revalue(ETH.symbol)  # still held
    assert changed()
