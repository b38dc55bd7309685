"""A bot's book from its own fills: positions, trades from flat to flat, fees, open orders.

Every expected number is worked out by hand in a comment and compared as an exact Decimal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeguard.risk import BotBook, ClosedTrade, OpenOrder, Position
from tradeguard.venues.types import MarketKind, Side

D = Decimal
ETH = "ETH/USDT"
PERP = "ETH/USDT:USDT"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
BUY, SELL = Side.BUY, Side.SELL


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fill(
    book: BotBook,
    side: Side,
    amount: str,
    price: str,
    *,
    fee: str = "0",
    base_fee: str = "0",
    minute: int = 0,
    symbol: str = ETH,
) -> list[ClosedTrade]:
    return book.apply_fill(symbol, side, D(amount), D(price), D(fee), D(base_fee), at(minute))


# -- long round trips --------------------------------------------------------------------------


def test_a_winning_long_round_trip_with_quote_fees() -> None:
    book = BotBook()
    # buy 2 @ 100, fee 0.2 USDT: the open trade has realized -0.2 so far
    assert fill(book, BUY, "2", "100", fee="0.2", minute=0) == []
    assert book.positions[ETH] == Position(D(2), D(100), D("-0.2"), at(0))
    assert book.realized == D("-0.2")
    # sell 2 @ 110, fee 0.22: (110 - 100) * 2 - 0.22 = 19.78; the trade: -0.2 + 19.78 = 19.58
    closed = fill(book, SELL, "2", "110", fee="0.22", minute=5)
    assert closed == [ClosedTrade(ETH, D("19.58"), at(0), at(5))]
    assert book.realized == D("19.58")
    assert book.qty(ETH) == 0
    assert book.positions[ETH] == Position(D(0), D(0), D(0), None)  # flat: nothing carried


def test_a_losing_long_round_trip_with_quote_fees() -> None:
    book = BotBook()
    fill(book, BUY, "0.5", "3000", fee="1.5", minute=0)  # -1.5
    # (2940 - 3000) * 0.5 = -30, minus the fee 1.47: -31.47; trade -1.5 - 31.47 = -32.97
    closed = fill(book, SELL, "0.5", "2940", fee="1.47", minute=1)
    assert closed == [ClosedTrade(ETH, D("-32.97"), at(0), at(1))]
    assert book.realized == D("-32.97")


def test_adding_to_a_position_averages_the_entry() -> None:
    book = BotBook()
    fill(book, BUY, "1", "100")
    fill(book, BUY, "3", "104")
    # (1 * 100 + 3 * 104) / 4 = 412 / 4 = 103
    assert book.positions[ETH].avg_price == D(103)
    assert book.qty(ETH) == D(4)
    assert book.unrealized({ETH: D(105)}) == D(8)  # (105 - 103) * 4


def test_partial_closes_accumulate_into_one_trade() -> None:
    book = BotBook()
    assert fill(book, BUY, "3", "100", fee="0.3", minute=0) == []  # trade so far: -0.3
    # sell 1 @ 110: +10 - 0.11 = 9.89 (trade so far 9.59); the entry price stays 100
    assert fill(book, SELL, "1", "110", fee="0.11", minute=1) == []
    assert book.positions[ETH].avg_price == D(100)
    assert book.positions[ETH].trade_pnl == D("9.59")
    # sell 1 @ 90: -10 - 0.09 = -10.09 (trade so far -0.5)
    assert fill(book, SELL, "1", "90", fee="0.09", minute=2) == []
    assert book.positions[ETH].trade_pnl == D("-0.5")
    assert book.qty(ETH) == D(1)
    # sell the last 1 @ 105: +5 - 0.105 = 4.895; the trade: -0.5 + 4.895 = 4.395
    closed = fill(book, SELL, "1", "105", fee="0.105", minute=3)
    assert closed == [ClosedTrade(ETH, D("4.395"), at(0), at(3))]
    assert book.realized == D("4.395")  # every partial close counted once


# -- flips -------------------------------------------------------------------------------------


def test_a_flip_closes_one_trade_and_opens_the_next_at_the_fill_price() -> None:
    book = BotBook()
    fill(book, BUY, "1", "100", fee="0.1", minute=0)
    # sell 3 @ 90, fee 0.27: closes the long 1 at (90 - 100) * 1 - 0.27 = -10.27 (the whole fee
    # goes to the trade it closes); trade: -0.1 - 10.27 = -10.37; a short of 2 opens at 90
    closed = fill(book, SELL, "3", "90", fee="0.27", minute=7)
    assert closed == [ClosedTrade(ETH, D("-10.37"), at(0), at(7))]
    assert book.positions[ETH] == Position(D(-2), D(90), D(0), at(7))
    assert book.realized == D("-10.37")
    # the new trade is its own: buy 2 @ 85 closes the short at (85 - 90) * 2 * -1 = +10
    closed = fill(book, BUY, "2", "85", minute=9)
    assert closed == [ClosedTrade(ETH, D(10), at(7), at(9))]
    assert book.realized == D("-0.37")


def test_a_flip_from_short_to_long() -> None:
    book = BotBook()
    fill(book, SELL, "1", "100", symbol=PERP, minute=0)
    # buy 3 @ 90: the short closes at (90 - 100) * 1 * -1 = +10, minus fee 0.27 = 9.73
    closed = fill(book, BUY, "3", "90", fee="0.27", symbol=PERP, minute=1)
    assert closed == [ClosedTrade(PERP, D("9.73"), at(0), at(1))]
    assert book.positions[PERP] == Position(D(2), D(90), D(0), at(1))


# -- shorts ------------------------------------------------------------------------------------


def test_a_short_round_trip_on_a_perpetual() -> None:
    book = BotBook()
    fill(book, SELL, "2", "100", fee="0.1", symbol=PERP, minute=0)
    assert book.positions[PERP].qty == D(-2)
    assert book.unrealized({PERP: D(95)}) == D(10)  # (95 - 100) * -2: a short gains on a fall
    # partial cover: buy 1 @ 95: (95 - 100) * 1 * -1 = +5, fee 0.05: 4.95 (trade 4.85)
    assert fill(book, BUY, "1", "95", fee="0.05", symbol=PERP, minute=1) == []
    # cover the rest @ 104: (104 - 100) * 1 * -1 = -4, fee 0.052: -4.052; trade 4.85 - 4.052
    closed = fill(book, BUY, "1", "104", fee="0.052", symbol=PERP, minute=2)
    assert closed == [ClosedTrade(PERP, D("0.798"), at(0), at(2))]
    assert book.realized == D("0.798")


def test_a_losing_short() -> None:
    book = BotBook()
    fill(book, SELL, "0.4", "2500", symbol=PERP)
    # (2600 - 2500) * 0.4 * -1 = -40
    assert fill(book, BUY, "0.4", "2600", symbol=PERP) == [ClosedTrade(PERP, D(-40), at(0), at(0))]


# -- fees in the base currency -----------------------------------------------------------------


def test_a_base_fee_on_a_buy_is_a_worse_entry_price() -> None:
    book = BotBook()
    # buy 1 @ 99.8 paying 0.002 ETH: 0.998 ETH arrive for 99.8 USDT, i.e. 99.8 / 0.998 = 100
    assert fill(book, BUY, "1", "99.8", base_fee="0.002") == []
    assert book.positions[ETH].qty == D("0.998")
    assert book.positions[ETH].avg_price == D(100)
    assert book.realized == 0  # the fee is in the price, not taken twice
    # sell the 0.998 @ 110, fee 0.1 USDT: 109.78 - 0.1 in, 99.8 out: 9.88
    closed = fill(book, SELL, "0.998", "110", fee="0.1", minute=1)
    assert closed == [ClosedTrade(ETH, D("9.88"), at(0), at(1))]


def test_a_base_fee_on_a_sell_is_a_worse_exit_price() -> None:
    book = BotBook()
    fill(book, BUY, "1", "100")
    # sell 0.499 @ 110 paying 0.001 ETH: 0.5 ETH leave for 54.89 USDT, i.e. 54.89 / 0.5 = 109.78
    # per ETH; (109.78 - 100) * 0.5 = 4.89
    assert fill(book, SELL, "0.499", "110", base_fee="0.001") == []
    assert book.positions[ETH].qty == D("0.5")
    assert book.positions[ETH].trade_pnl == D("4.89")
    assert book.realized == D("4.89")


def test_a_base_fee_as_large_as_the_fill_is_refused() -> None:
    book = BotBook()
    with pytest.raises(ValueError, match="base fee"):
        fill(book, BUY, "0.001", "100", base_fee="0.001")
    assert book.positions == {}


# -- open orders -------------------------------------------------------------------------------


def order(
    cid: str, side: Side, remaining: str, *, reduce_only: bool = False, symbol: str = PERP
) -> OpenOrder:
    kind = MarketKind.SWAP if symbol == PERP else MarketKind.SPOT
    return OpenOrder(cid, symbol, kind, side, D(remaining), D(100), reduce_only)


def test_open_amount_by_side_and_reduce_only() -> None:
    book = BotBook()
    for o in (
        order("a", BUY, "1"),
        order("b", BUY, "0.25", reduce_only=True),
        order("c", SELL, "2"),
        order("d", SELL, "0.5", reduce_only=True),
        order("e", SELL, "0.125", reduce_only=True),
        order("f", BUY, "7", symbol=ETH),  # another symbol: never counted for PERP
    ):
        book.add_order(o)
    assert book.open_amount(PERP, BUY) == D("1.25")
    assert book.open_amount(PERP, SELL) == D("2.625")
    assert book.open_amount(PERP, BUY, reduce_only=False) == D(1)
    assert book.open_amount(PERP, BUY, reduce_only=True) == D("0.25")
    assert book.open_amount(PERP, SELL, reduce_only=True) == D("0.625")
    assert book.open_amount(PERP, SELL, reduce_only=False) == D(2)
    assert book.open_amount(ETH, BUY) == D(7)
    assert book.open_amount(ETH, SELL) == 0
    assert book.open_amount("BTC/USDT", BUY) == 0
