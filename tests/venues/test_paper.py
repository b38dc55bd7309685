"""The paper venue through its `Venue` API: fills, holds, fees, refusals, ids, persistence.

Every expected number is worked out by hand in the test (maker 2 bps, taker 5 bps, slippage
10 bps) and compared as an exact Decimal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import (
    ConfigError,
    InsufficientFunds,
    InvalidOrder,
    MarketDataError,
    OrderNotFound,
    VenueRejected,
)
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.store import DatabaseTarget, create_engine, upgrade
from tradeguard.venues import (
    Balance,
    BalanceLine,
    Liquidity,
    Market,
    MarketKind,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Venue,
)
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles

T = TypeVar("T")
D = Decimal
SYMBOL = "ETH/USDT"
ETH_USDT = Market(
    symbol=SYMBOL,
    venue_symbol="ETHUSDT",
    base="ETH",
    quote="USDT",
    kind=MarketKind.SPOT,
    price_tick=D("0.01"),
    amount_step=D("0.0001"),
    min_amount=D("0.001"),
    min_notional=D("5"),
)
PERP = Market(
    symbol="ETH/USDT:USDT",
    venue_symbol="ETHUSDT",
    base="ETH",
    quote="USDT",
    kind=MarketKind.SWAP,
    price_tick=D("0.01"),
    amount_step=D("0.001"),
    settle="USDT",
)
MARKETS = {SYMBOL: ETH_USDT, PERP.symbol: PERP}
CONFIG = PaperConfig(
    maker_fee_bps=D(2),
    taker_fee_bps=D(5),
    slippage_bps=D(10),
    starting_balances={"USDT": D(10_000), "ETH": D(2)},
)
T0 = 1_700_000_000_000
STEP = 300_000


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def candle(i: int, o: str, h: str, low: str, c: str) -> Candle:
    return Candle(T0 + i * STEP, D(o), D(h), D(low), D(c), D(100))


def cid(n: int) -> str:
    return f"0x{n:032x}"


def migrated(target: DatabaseTarget) -> sa.Engine:
    engine = create_engine(target)
    upgrade(engine, target)
    return engine


class Desk:
    """A venue on a migrated database, its clock, and short ways to drive it."""

    def __init__(self, engine: sa.Engine, account: str = "alice", **kw: Any) -> None:
        self.engine = engine
        self.clock = ManualClock(datetime.fromtimestamp(T0 / 1000, UTC))
        kw.setdefault("config", CONFIG)
        kw.setdefault("markets", MARKETS)
        self.venue = PaperVenue(engine, account=account, clock=self.clock, **kw)
        self.i = 0

    def feed(self, o: str, h: str, low: str, c: str) -> list[Any]:
        self.clock.advance(STEP / 1000)
        fills = run(self.venue.on_candle(SYMBOL, candle(self.i, o, h, low, c)))
        self.i += 1
        return fills

    def order(self, n: int, side: Side, type_: OrderType, amount: str, **kw: Any) -> Any:
        for name in ("price", "stop_price"):
            if name in kw:
                kw[name] = D(kw[name])
        request = OrderRequest(cid(n), SYMBOL, side, type_, D(amount), **kw)
        return run(self.venue.create_order(request))

    def balance(self) -> Balance:
        return run(self.venue.fetch_balance())

    def line(self, currency: str) -> BalanceLine:
        return self.balance().lines[currency]


@pytest.fixture
def engine(db_target: DatabaseTarget) -> sa.Engine:
    return migrated(db_target)


@pytest.fixture
def desk(engine: sa.Engine) -> Desk:
    return Desk(engine)


def test_the_paper_venue_is_a_venue(desk: Desk) -> None:
    venue: Venue = desk.venue
    assert venue.name == "paper"
    perms = run(venue.check_permissions())
    assert (perms.can_read, perms.can_trade, perms.can_withdraw, perms.can_transfer) == (
        True,
        True,
        False,
        False,
    )
    assert not perms.moves_funds
    assert run(venue.load_markets()) == MARKETS


def test_a_new_account_starts_with_the_configured_balances(desk: Desk) -> None:
    assert desk.balance().lines == {
        "ETH": BalanceLine(D(2), D(0)),
        "USDT": BalanceLine(D(10_000), D(0)),
    }


# -- market orders -----------------------------------------------------------------------------


def test_a_market_buy_fills_at_the_next_open_plus_slippage(desk: Desk) -> None:
    desk.feed("1990", "2005", "1985", "2000")
    order = desk.order(1, Side.BUY, OrderType.MARKET, "1.5")
    assert (order.venue_order_id, order.status, order.filled) == ("PO0000000001", "open", 0)
    # Held: last close 2000 plus 10 bps slippage, times 1.5, plus the 5 bps taker fee.
    # 2000 * 1.001 = 2002; * 1.5 = 3003; * 1.0005 = 3004.5015
    assert desk.line("USDT") == BalanceLine(D("6995.4985"), D("3004.5015"))

    fills = desk.feed("2010", "2020", "2000", "2015")
    # The next open 2010 plus 10 bps: 2012.01. Cost 1.5 * 2012.01 = 3018.015; taker fee
    # 3018.015 * 0.0005 = 1.5090075. The fill costs more than was held: the rest comes from free.
    assert len(fills) == 1
    trade = fills[0]
    assert (trade.trade_id, trade.venue_order_id, trade.client_order_id) == (
        "PT0000000001",
        "PO0000000001",
        cid(1),
    )
    assert (trade.side, trade.price, trade.amount) == (Side.BUY, D("2012.01"), D("1.5"))
    assert (trade.fee, trade.fee_currency, trade.liquidity) == (
        D("1.5090075"),
        "USDT",
        Liquidity.TAKER,
    )
    assert trade.at == desk.clock.now()
    assert desk.line("USDT") == BalanceLine(D("10000") - D("3018.015") - D("1.5090075"), D(0))
    assert desk.line("USDT").free == D("6980.4759925")
    assert desk.line("ETH") == BalanceLine(D("3.5"), D(0))
    done = run(desk.venue.fetch_order(SYMBOL, venue_order_id="PO0000000001"))
    assert (done.status, done.filled, done.average, done.fee, done.fee_currency) == (
        OrderStatus.FILLED,
        D("1.5"),
        D("2012.01"),
        D("1.5090075"),
        "USDT",
    )
    assert run(desk.venue.fetch_open_orders()) == []


def test_a_market_buy_that_fills_below_its_estimate_releases_the_rest(desk: Desk) -> None:
    desk.feed("1990", "2005", "1985", "2000")
    desk.order(1, Side.BUY, OrderType.MARKET, "1")  # holds 2002 * 1.0005 = 2003.001
    desk.feed("1900", "1910", "1890", "1905")
    # 1900 * 1.001 = 1901.9; fee 0.95095; everything else of the hold is free again.
    assert desk.line("USDT") == BalanceLine(D("10000") - D("1901.9") - D("0.95095"), D(0))


def test_a_market_sell_gets_the_next_open_less_slippage(desk: Desk) -> None:
    order = desk.order(1, Side.SELL, OrderType.MARKET, "2")  # a sell needs no price to hold
    assert order.status is OrderStatus.OPEN
    assert desk.line("ETH") == BalanceLine(D(0), D(2))
    (trade,) = desk.feed("2000", "2001", "1990", "1995")
    # 2000 * 0.999 = 1998; proceeds 3996; taker fee 3996 * 0.0005 = 1.998
    assert (trade.price, trade.fee) == (D("1998"), D("1.998"))
    assert desk.balance().lines == {"USDT": BalanceLine(D("13994.002"), D(0))}


def test_a_market_buy_before_any_price_is_refused(desk: Desk) -> None:
    with pytest.raises(VenueRejected, match="no price yet to value a market buy"):
        desk.order(1, Side.BUY, OrderType.MARKET, "1")


def test_a_market_buy_that_outruns_its_hold_and_the_free_balance_expires(engine: Any) -> None:
    desk = Desk(engine, "tight", config=PaperConfig(starting_balances={"USDT": D(1010)}))
    desk.feed("990", "1001", "989", "1000")
    # Default config: taker 10 bps, slippage 5 bps. Hold 1000 * 1.0005 * 1.001 = 1001.5005.
    desk.order(1, Side.BUY, OrderType.MARKET, "1")
    assert desk.feed("1100", "1100", "1090", "1095") == []
    order = run(desk.venue.fetch_order(SYMBOL, client_order_id=cid(1)))
    assert (order.status, order.filled) == (OrderStatus.EXPIRED, 0)
    assert desk.balance().lines == {"USDT": BalanceLine(D(1010), D(0))}


# -- limit orders ------------------------------------------------------------------------------


def test_a_limit_buy_fills_at_its_price_only_when_a_candle_trades_through(desk: Desk) -> None:
    desk.feed("2010", "2015", "2005", "2010")
    order = desk.order(1, Side.BUY, OrderType.LIMIT, "2", price="2000")
    # Held: 2000 * 2 plus the higher fee (taker, 5 bps): 4000 * 1.0005 = 4002
    assert desk.line("USDT") == BalanceLine(D("5998"), D("4002"))
    assert desk.feed("2008", "2012", "2000", "2001") == []  # touches 2000: not through
    assert desk.feed("2001", "2003", "2000.01", "2002") == []
    (trade,) = desk.feed("2002", "2004", "1999.99", "2000.5")
    # Maker at the limit: 4000 * 0.0002 = 0.8
    assert (trade.price, trade.amount, trade.fee, trade.liquidity) == (
        D("2000"),
        D("2"),
        D("0.8"),
        Liquidity.MAKER,
    )
    assert desk.balance().lines == {
        "ETH": BalanceLine(D(4), D(0)),
        "USDT": BalanceLine(D("5999.2"), D(0)),
    }
    assert run(desk.venue.fetch_order(SYMBOL, client_order_id=order.client_order_id)).average == (
        D("2000")
    )


def test_a_limit_sell_fills_when_the_high_goes_above_it(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.SELL, OrderType.LIMIT, "1", price="2050")
    assert desk.line("ETH") == BalanceLine(D(1), D(1))
    assert desk.feed("2000", "2050", "1995", "2040") == []
    (trade,) = desk.feed("2040", "2050.01", "2030", "2045")
    assert (trade.price, trade.fee, trade.liquidity) == (D("2050"), D("0.41"), Liquidity.MAKER)
    assert desk.line("USDT") == BalanceLine(D("12049.59"), D(0))


def test_a_limit_that_crosses_on_arrival_takes_at_the_open(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="2100")
    (trade,) = desk.feed("2050", "2060", "2040", "2055")
    # Taker at the open plus slippage, under the limit: 2050 * 1.001 = 2052.05; fee 1.026025
    assert (trade.price, trade.liquidity, trade.fee) == (
        D("2052.05"),
        Liquidity.TAKER,
        D("1.026025"),
    )
    assert desk.line("USDT") == BalanceLine(D("10000") - D("2052.05") - D("1.026025"), D(0))


def test_slippage_never_takes_a_crossing_limit_past_its_price(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="2001")
    (trade,) = desk.feed("2000", "2010", "1995", "2005")  # 2000 * 1.001 = 2002 > 2001
    assert (trade.price, trade.liquidity) == (D("2001"), Liquidity.TAKER)


def test_a_resting_limit_the_market_gaps_through_fills_at_its_own_price(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1950")
    assert desk.feed("2000", "2002", "1990", "1995") == []
    (trade,) = desk.feed("1900", "1910", "1890", "1905")  # gap down through the limit
    assert (trade.price, trade.liquidity) == (D("1950"), Liquidity.MAKER)


def test_post_only_ioc_and_fok_orders(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    with pytest.raises(VenueRejected, match=r"post-only buy at 2000\.5 would take liquidity"):
        desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="2000.5",
                   time_in_force=TimeInForce.POST_ONLY)  # fmt: skip
    desk.order(2, Side.BUY, OrderType.LIMIT, "1", price="1999",
               time_in_force=TimeInForce.POST_ONLY)  # fmt: skip
    desk.order(3, Side.BUY, OrderType.LIMIT, "1", price="1990", time_in_force=TimeInForce.IOC)
    desk.order(4, Side.SELL, OrderType.LIMIT, "1", price="1990", time_in_force=TimeInForce.FOK)
    fills = desk.feed("1995", "2000", "1980", "1990")
    # 2 would take at the 1995 open: it expires. 3 does not cross the 1995 open: expires.
    # 4 crosses: a taker sell at 1995 * 0.999 = 1993.005, above its 1990 limit.
    assert [(t.client_order_id, t.price) for t in fills] == [(cid(4), D("1993.005"))]
    statuses = [
        run(desk.venue.fetch_order(SYMBOL, client_order_id=cid(n))).status for n in (2, 3, 4)
    ]
    assert statuses == [OrderStatus.EXPIRED, OrderStatus.EXPIRED, OrderStatus.FILLED]
    assert desk.line("USDT").used == 0


# -- stop orders -------------------------------------------------------------------------------


def test_a_buy_stop_triggers_on_the_high_and_fills_at_the_stop_plus_slippage(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.STOP_MARKET, "1", stop_price="2100")
    # Held: 2100 * 1.001 = 2102.1; * 1.0005 = 2102.1 + 1.05105 = 2103.15105
    assert desk.line("USDT").used == D("2103.15105")
    assert desk.feed("2000", "2099.99", "1990", "2050") == []
    (trade,) = desk.feed("2050", "2100", "2040", "2090")
    assert (trade.price, trade.liquidity, trade.fee) == (
        D("2102.1"),
        Liquidity.TAKER,
        D("1.05105"),
    )
    assert desk.line("USDT") == BalanceLine(D("10000") - D("2102.1") - D("1.05105"), D(0))


def test_a_sell_stop_the_market_gaps_through_fills_at_the_open(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.SELL, OrderType.STOP_MARKET, "1", stop_price="1900")
    (trade,) = desk.feed("1800", "1850", "1790", "1820")  # opens below the stop
    # 1800 * 0.999 = 1798.2; fee 0.8991
    assert (trade.price, trade.fee) == (D("1798.2"), D("0.8991"))
    assert desk.line("USDT").free == D("10000") + D("1798.2") - D("0.8991")


def test_a_stop_that_would_trigger_at_once_is_refused(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    with pytest.raises(VenueRejected, match="would trigger immediately"):
        desk.order(1, Side.BUY, OrderType.STOP_MARKET, "1", stop_price="1999")
    with pytest.raises(VenueRejected, match="would trigger immediately"):
        desk.order(2, Side.SELL, OrderType.STOP_MARKET, "1", stop_price="2000")


def test_a_stop_limit_fills_within_its_limit_or_rests_as_a_maker(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.STOP_LIMIT, "1", stop_price="2100", price="2110")
    desk.order(2, Side.BUY, OrderType.STOP_LIMIT, "1", stop_price="2100", price="2105")
    fills = desk.feed("2150", "2160", "2140", "2150")  # gaps over both stops and limits
    assert fills == []
    assert [o.client_order_id for o in run(desk.venue.fetch_open_orders(SYMBOL))] == [
        cid(1),
        cid(2),
    ]
    fills = desk.feed("2120", "2125", "2106", "2110")  # through 2110 only
    assert [(t.client_order_id, t.price, t.liquidity) for t in fills] == [
        (cid(1), D("2110"), Liquidity.MAKER)
    ]
    desk.order(3, Side.SELL, OrderType.STOP_LIMIT, "1", stop_price="2000", price="1990")
    fills = desk.feed("2100", "2101", "1995", "2000")
    # 2 rests at 2105 and the low goes through it: maker at its price. 3 triggers at 2000,
    # within its limit: a taker at 2000 * 0.999 = 1998.
    assert [(t.client_order_id, t.price, t.liquidity) for t in fills] == [
        (cid(2), D("2105"), Liquidity.MAKER),
        (cid(3), D("1998"), Liquidity.TAKER),
    ]


# -- holds, refusals, cancels, ids -------------------------------------------------------------


def test_insufficient_balance_is_refused_and_changes_nothing(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    before = desk.balance()
    with pytest.raises(InsufficientFunds) as caught:
        desk.order(1, Side.BUY, OrderType.LIMIT, "5", price="2000")
    assert caught.value.message == (
        "Account has insufficient balance for requested action: need 10005 USDT, free 10000"
    )
    assert caught.value.venue == "paper"
    with pytest.raises(InsufficientFunds, match=r"need 2\.5 ETH, free 2$"):
        desk.order(2, Side.SELL, OrderType.LIMIT, "2.5", price="2100")
    assert desk.balance() == before
    assert run(desk.venue.fetch_open_orders()) == []
    # The refused orders took no number and no client id.
    order = desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900")
    assert order.venue_order_id == "PO0000000001"


def test_cancel_releases_the_hold(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900")
    desk.order(2, Side.SELL, OrderType.LIMIT, "0.5", price="2100")
    assert desk.line("USDT").used == D("1900.95")
    canceled = run(desk.venue.cancel_order(SYMBOL, client_order_id=cid(1)))
    assert (canceled.status, canceled.venue_order_id) == (OrderStatus.CANCELED, "PO0000000001")
    canceled = run(desk.venue.cancel_order(SYMBOL, venue_order_id="PO0000000002"))
    assert canceled.status is OrderStatus.CANCELED
    assert desk.balance().lines == {
        "ETH": BalanceLine(D(2), D(0)),
        "USDT": BalanceLine(D(10_000), D(0)),
    }
    with pytest.raises(OrderNotFound, match="already canceled"):
        run(desk.venue.cancel_order(SYMBOL, client_order_id=cid(1)))
    assert desk.feed("1800", "2200", "1700", "2000") == []  # canceled orders never fill


def test_orders_are_found_by_exactly_one_id(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900")
    venue = desk.venue
    with pytest.raises(InvalidOrder, match="exactly one"):
        run(venue.fetch_order(SYMBOL))
    with pytest.raises(InvalidOrder, match="exactly one"):
        run(venue.cancel_order(SYMBOL, venue_order_id="PO0000000001", client_order_id=cid(1)))
    with pytest.raises(OrderNotFound, match="no order PO0000000009 on ETH/USDT"):
        run(venue.fetch_order(SYMBOL, venue_order_id="PO0000000009"))
    with pytest.raises(OrderNotFound):
        run(venue.cancel_order("BTC/USDT", client_order_id=cid(1)))  # another symbol
    assert run(venue.fetch_order(SYMBOL, client_order_id=cid(1))) == run(
        venue.fetch_order(SYMBOL, venue_order_id="PO0000000001")
    )


def test_a_client_order_id_used_again_returns_the_same_order(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    first = desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900")
    desk.clock.advance(5)
    again = desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900")
    assert again == first
    assert len(run(desk.venue.fetch_open_orders())) == 1
    assert desk.line("USDT").used == D("1900.95")  # held once
    with pytest.raises(VenueRejected, match="already used by order PO0000000001") as caught:
        desk.order(1, Side.BUY, OrderType.LIMIT, "2", price="1900")
    assert caught.value.code == "duplicate_client_order_id"
    (trade,) = desk.feed("1950", "1960", "1899", "1920")
    assert desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900").status is (
        OrderStatus.FILLED
    )
    assert len(run(desk.venue.fetch_my_trades(SYMBOL))) == 1
    assert trade.client_order_id == cid(1)


def test_precision_checks_refuse_before_anything_is_held(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    with pytest.raises(InvalidOrder, match=r"price 1900\.005 is not a multiple of the tick 0\.01"):
        desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900.005")
    with pytest.raises(InvalidOrder, match=r"amount 0\.0009 is below the minimum 0\.001"):
        desk.order(2, Side.BUY, OrderType.LIMIT, "0.0009", price="1900")
    with pytest.raises(InvalidOrder, match=r"notional 3\.800 is below the minimum 5"):
        desk.order(3, Side.BUY, OrderType.LIMIT, "0.002", price="1900")
    with pytest.raises(InvalidOrder, match=r"stop price 2100\.001 is not a multiple"):
        desk.order(4, Side.BUY, OrderType.STOP_MARKET, "1", stop_price="2100.001")
    with pytest.raises(InvalidOrder, match="no market 'BTC/USDT'"):
        run(desk.venue.create_order(
            OrderRequest(cid(5), "BTC/USDT", Side.BUY, OrderType.MARKET, D(1))
        ))  # fmt: skip
    # Amounts are rounded down to the step, never up.
    order = desk.order(6, Side.BUY, OrderType.LIMIT, "1.00019", price="1900")
    assert order.amount == D("1.0001")
    assert desk.balance().lines["USDT"].used == D("1.0001") * D(1900) * D("1.0005")


def test_perpetuals_and_reduce_only_are_refused_clearly(desk: Desk) -> None:
    request = OrderRequest(cid(1), PERP.symbol, Side.BUY, OrderType.MARKET, D(1))
    with pytest.raises(InvalidOrder, match="does not simulate perpetual markets yet"):
        run(desk.venue.create_order(request))
    with pytest.raises(InvalidOrder, match="reduce_only applies to perpetual markets"):
        desk.order(2, Side.SELL, OrderType.MARKET, "1", reduce_only=True)


# -- candles -----------------------------------------------------------------------------------


def test_candles_already_processed_are_skipped_and_bad_ones_refused(desk: Desk) -> None:
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.LIMIT, "1", price="1950")
    again = candle(0, "1000", "1000", "900", "950")  # the same open time as the first one
    assert run(desk.venue.on_candle(SYMBOL, again)) == []
    assert len(run(desk.venue.fetch_open_orders())) == 1
    with pytest.raises(MarketDataError, match="inconsistent"):
        run(desk.venue.on_candle(SYMBOL, candle(5, "2000", "1990", "1980", "1985")))
    with pytest.raises(MarketDataError, match="not one of its markets"):
        run(desk.venue.on_candle("BTC/USDT", candle(5, "1", "1", "1", "1")))


def test_fetch_ohlcv_and_fetch_my_trades(engine: sa.Engine) -> None:
    desk = Desk(engine, timeframe=Timeframe.parse("5m"))
    desk.feed("2000", "2001", "1999", "2000")
    for n in range(1, 4):
        desk.order(n, Side.BUY, OrderType.MARKET, "0.1")
        desk.feed("2000", "2001", "1999", "2000")
    got = run(desk.venue.fetch_ohlcv(SYMBOL, Timeframe.parse("5m"), limit=2))
    assert [c.ts_ms for c in got] == [T0 + 2 * STEP, T0 + 3 * STEP]
    got = run(desk.venue.fetch_ohlcv(SYMBOL, Timeframe.parse("5m"), since_ms=T0 + STEP))
    assert [c.ts_ms for c in got] == [T0 + STEP, T0 + 2 * STEP, T0 + 3 * STEP]
    with pytest.raises(VenueRejected, match="candles of 1h are not available"):
        run(desk.venue.fetch_ohlcv(SYMBOL, Timeframe.parse("1h")))
    trades = run(desk.venue.fetch_my_trades(SYMBOL))
    assert [t.trade_id for t in trades] == ["PT0000000001", "PT0000000002", "PT0000000003"]
    assert [t.trade_id for t in run(desk.venue.fetch_my_trades(SYMBOL, limit=2))] == [
        "PT0000000002",
        "PT0000000003",
    ]
    since = int(trades[1].at.timestamp() * 1000)
    assert [
        t.trade_id for t in run(desk.venue.fetch_my_trades(SYMBOL, since_ms=since, limit=1))
    ] == ["PT0000000002"]
    assert run(desk.venue.fetch_my_trades("BTC/USDT")) == []


def test_fetch_ohlcv_reads_a_candle_source_when_given(engine: sa.Engine) -> None:
    asked: list[tuple[str, str, int | None, int]] = []

    def source(symbol: str, timeframe: Timeframe, since_ms: int | None, limit: int) -> list[Candle]:
        asked.append((symbol, timeframe.text, since_ms, limit))
        return [candle(0, "1", "1", "1", "1")]

    desk = Desk(engine, candles=source)
    assert run(desk.venue.fetch_ohlcv(SYMBOL, Timeframe.parse("1h"), since_ms=5, limit=7)) == [
        candle(0, "1", "1", "1", "1")
    ]
    assert asked == [(SYMBOL, "1h", 5, 7)]


# -- persistence -------------------------------------------------------------------------------


def test_a_restarted_venue_continues_where_the_last_one_stopped(
    db_target: DatabaseTarget, engine: sa.Engine
) -> None:
    desk = Desk(engine)
    desk.feed("2000", "2001", "1999", "2000")
    desk.order(1, Side.BUY, OrderType.MARKET, "0.5")
    desk.order(2, Side.BUY, OrderType.LIMIT, "1", price="1900")
    desk.order(3, Side.SELL, OrderType.STOP_MARKET, "0.25", stop_price="1800")
    desk.feed("2010", "2020", "1950", "1960")
    before = (
        desk.balance(),
        run(desk.venue.fetch_open_orders()),
        run(desk.venue.fetch_my_trades(SYMBOL)),
    )
    run(desk.venue.close())
    with pytest.raises(VenueRejected, match="closed"):
        desk.balance()
    engine.dispose()

    # A new process: a new engine, a new venue, a config that would fund a new account
    # differently (the existing account is never reset).
    reopened = Desk(
        migrated(db_target),
        config=PaperConfig(
            maker_fee_bps=D(2),
            taker_fee_bps=D(5),
            slippage_bps=D(10),
            starting_balances={"USDT": D(1)},
        ),
    )
    reopened.clock = desk.clock
    reopened.venue.clock = desk.clock
    reopened.i = desk.i
    after = (
        reopened.balance(),
        run(reopened.venue.fetch_open_orders()),
        run(reopened.venue.fetch_my_trades(SYMBOL)),
    )
    assert after == before
    assert reopened.venue.last_candle(SYMBOL) == candle(1, "2010", "2020", "1950", "1960")
    # The repeated last candle changes nothing; the next one fills the resting orders.
    assert run(reopened.venue.on_candle(SYMBOL, candle(1, "1", "1", "1", "1"))) == []
    fills = reopened.feed("1890", "1895", "1790", "1800")
    assert [(t.trade_id, t.client_order_id, t.price) for t in fills] == [
        ("PT0000000002", cid(2), D("1900")),  # resting buy, gapped through: its own price
        ("PT0000000003", cid(3), D("1798.2")),  # sell stop: 1800 * 0.999
    ]
    assert reopened.order(4, Side.BUY, OrderType.LIMIT, "0.01", price="1000").venue_order_id == (
        "PO0000000004"
    )


def test_accounts_are_separate(engine: sa.Engine) -> None:
    alice, bob = Desk(engine, "alice"), Desk(engine, "bob")
    alice.feed("2000", "2001", "1999", "2000")
    alice.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900")
    assert bob.order(1, Side.BUY, OrderType.LIMIT, "1", price="1900").venue_order_id == (
        "PO0000000001"
    )
    bob.feed("1950", "1960", "1800", "1850")  # bob's candle fills bob's order only
    assert len(run(alice.venue.fetch_open_orders())) == 1
    assert run(bob.venue.fetch_open_orders()) == []


# -- configuration and markets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maker_fee_bps": D(-1)}, "maker_fee_bps is -1; it must be between 0 and 1000"),
        ({"taker_fee_bps": D(1001)}, "taker_fee_bps is 1001"),
        ({"slippage_bps": D("NaN")}, "slippage_bps must be a finite number"),
        ({"slippage_bps": 1.5}, "slippage_bps is a Decimal"),
        ({"leverage": D(0)}, "leverage is 0; it must be between 1 and 125"),
        ({"starting_balances": {"USDT": D(-5)}}, "starting balance of USDT is -5"),
        ({"starting_balances": {"US DT": D(5)}}, "is not a currency code"),
    ],
)
def test_config_is_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PaperConfig(**kwargs)


def test_config_takes_whole_numbers_as_decimals() -> None:
    config = PaperConfig(maker_fee_bps=D(1), taker_fee_bps=3, starting_balances={"BTC": 1})
    assert config.taker_fee_bps == D(3)
    assert config.starting_balances == {"BTC": D(1)}


def test_a_market_built_from_candles_takes_the_finest_tick_in_the_data() -> None:
    candles = [
        Candle(0, D("0.0984"), D("0.0994766"), D("0.09828605"), D("0.0994766"), D(1)),
        Candle(1, D("0.10000000"), D("0.1"), D("0.1"), D("0.1"), D(1)),
    ]
    market = market_from_candles("ETH/BTC", candles)
    assert (market.base, market.quote, market.venue_symbol, market.kind) == (
        "ETH",
        "BTC",
        "ETHBTC",
        MarketKind.SPOT,
    )
    assert (market.price_tick, market.amount_step, market.min_amount) == (
        D("1e-8"),
        D("1e-8"),
        D("1e-8"),
    )
    assert market_from_candles("X/Y", [Candle(0, D(5), D(6), D(4), D(5), D(1))]).price_tick == 1
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        market_from_candles("XRP/USDT:USDT", candles)
    with pytest.raises(ValueError, match="no candles"):
        market_from_candles("ETH/BTC", [])


def test_decimals_round_trip_exactly(engine: sa.Engine, tmp_path: Path) -> None:
    starting = {
        "A": D("0.1000000000000000000000000000001"),
        "B": D("1E-30"),
        "C": D("12345678901234567890.5"),
    }
    desk = Desk(engine, "exact", config=PaperConfig(starting_balances=starting))
    lines = desk.balance().lines
    assert {c: line.free for c, line in lines.items()} == starting
    assert str(lines["A"].free) == "0.1000000000000000000000000000001"
