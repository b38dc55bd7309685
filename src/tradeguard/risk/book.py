"""One bot's book: its positions, its open orders and its closed trades, from its own fills.

A position is signed (long > 0, short < 0) with an average entry price. A *trade* runs from
flat to flat: it opens with the first fill on a flat symbol and closes when the position is
back at zero; a fill that flips the position closes one trade and opens the next. A trade's PnL
is everything it realized, fees of every fill included (a fee charged in the base currency
counts as a worse fill price; fees in a third currency, such as a venue token, are not
counted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tradeguard.venues.types import MarketKind, Side

__all__ = [
    "BotBook",
    "ClosedTrade",
    "OpenOrder",
    "OpenSymbol",
    "OpenTotal",
    "Position",
    "worst_size",
]

ZERO = Decimal(0)
BUY = Side.BUY


@dataclass(slots=True)
class Position:
    qty: Decimal = ZERO  # signed
    avg_price: Decimal = ZERO
    trade_pnl: Decimal = ZERO  # realized so far by the open trade, fees included
    opened_at: datetime | None = None

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.avg_price) * self.qty


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    symbol: str
    pnl: Decimal
    opened_at: datetime | None
    closed_at: datetime


@dataclass(slots=True)
class OpenOrder:
    """An order the engine approved and has not seen end. `price` values it (its limit price,
    or the price it was approved at for a market order)."""

    client_order_id: str
    symbol: str
    kind: MarketKind
    side: Side
    remaining: Decimal
    price: Decimal
    reduce_only: bool


@dataclass(slots=True)
class OpenTotal:
    """The open orders of one symbol on one side, summed as they change. `value` is the sum of
    `remaining * price`: what open spot buys hold in the quote currency."""

    count: int = 0
    amount: Decimal = ZERO
    value: Decimal = ZERO


@dataclass(slots=True)
class OpenSymbol:
    """The open orders of one symbol, by side."""

    buy: OpenTotal = field(default_factory=OpenTotal)
    sell: OpenTotal = field(default_factory=OpenTotal)

    def side(self, side: Side) -> OpenTotal:
        return self.buy if side is BUY else self.sell


@dataclass(slots=True)
class BotBook:
    """Change `orders` only through `add_order`, `end_order` and `fill_order`, and positions
    only through `apply_fill`: they keep the per-symbol open totals the pre-trade checks read
    in O(1), and count the changes in `version`."""

    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, OpenOrder] = field(default_factory=dict)
    realized: Decimal = ZERO  # all closed and partly closed PnL, fees included
    _open: dict[str, OpenSymbol] = field(default_factory=dict)  # symbols with an open order
    _version: int = field(default=0, compare=False)

    @property
    def version(self) -> int:
        """Counts the changes: every order booked, ended or filled, every fill, and every
        `revalue` of a symbol the book holds or has orders in. A value worked out from the
        book (and its marks) is current while this is unchanged."""
        return self._version

    def revalue(self, symbol: str) -> None:
        """The price `symbol` is valued at moved: what was worked out at the old price is out
        of date if the book holds it or has orders in it."""
        if symbol in self._open or symbol in self.positions:
            self._version += 1

    def qty(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.qty if position else ZERO

    def open_amount(self, symbol: str, side: Side, *, reduce_only: bool | None = None) -> Decimal:
        if reduce_only is None:
            open_ = self._open.get(symbol)
            return open_.side(side).amount if open_ else ZERO
        return sum(
            (
                o.remaining
                for o in self.orders.values()
                if o.symbol == symbol and o.side is side and o.reduce_only is reduce_only
            ),
            ZERO,
        )

    def open_symbols(self) -> Mapping[str, OpenSymbol]:
        """The open orders summed by symbol and side; only symbols with an open order."""
        return self._open

    def sizes(self, symbol: str) -> tuple[Decimal, Decimal, Decimal]:
        """The position in `symbol` and the open amounts on each side: (qty, buys, sells)."""
        position = self.positions.get(symbol)
        qty = position.qty if position else ZERO
        open_ = self._open.get(symbol)
        if open_ is None:
            return qty, ZERO, ZERO
        return qty, open_.buy.amount, open_.sell.amount

    def worst(self, symbol: str, buy: Decimal = ZERO, sell: Decimal = ZERO) -> Decimal:
        """The largest position `symbol` could reach if every open order (plus `buy` or
        `sell`) filled: the exposure the limits hold a bot to."""
        return worst_size(*self.sizes(symbol), buy, sell)

    def gross(
        self, marks: Mapping[str, Decimal], replace: tuple[str, Decimal] | None = None
    ) -> Decimal:
        """The worst-case gross exposure: each symbol with a position or an open order at its
        `worst` size, valued at its mark (at the position's average price while it has none).
        `replace` is (symbol, size): that symbol at that size instead."""
        replaced, replaced_size = replace if replace is not None else (None, ZERO)
        positions, open_ = self.positions, self._open
        total = ZERO
        for symbol, sides in open_.items():
            position = positions.get(symbol)
            if symbol == replaced:
                size = replaced_size
            else:
                qty = position.qty if position else ZERO
                size = worst_size(qty, sides.buy.amount, sides.sell.amount)
            total += size * _price(symbol, marks, position)
        for symbol, position in positions.items():
            if position.qty and symbol not in open_:
                size = replaced_size if symbol == replaced else worst_size(position.qty, ZERO, ZERO)
                total += size * _price(symbol, marks, position)
        if replaced is not None and replaced not in open_ and not self.qty(replaced):
            total += replaced_size * _price(replaced, marks, positions.get(replaced))
        return total

    def add_order(self, order: OpenOrder) -> None:
        self.end_order(order.client_order_id)
        self._version += 1
        self.orders[order.client_order_id] = order
        open_ = self._open.get(order.symbol)
        if open_ is None:
            open_ = self._open[order.symbol] = OpenSymbol()
        total = open_.side(order.side)
        total.count += 1
        total.amount += order.remaining
        total.value += order.remaining * order.price

    def end_order(self, client_order_id: str) -> OpenOrder | None:
        order = self.orders.pop(client_order_id, None)
        if order is None:
            return None
        self._version += 1
        open_ = self._open[order.symbol]
        total = open_.side(order.side)
        total.count -= 1
        if total.count:
            total.amount -= order.remaining
            total.value -= order.remaining * order.price
        else:  # the side's last order: exact zeros, whatever was rounded on the way
            total.amount = total.value = ZERO
            if not open_.buy.count and not open_.sell.count:
                del self._open[order.symbol]
        return order

    def fill_order(self, client_order_id: str, amount: Decimal) -> None:
        """A fill of `amount` of an open order: it ends when nothing remains."""
        order = self.orders.get(client_order_id)
        if order is None:
            return
        if amount >= order.remaining:
            self.end_order(client_order_id)
            return
        self._version += 1
        order.remaining -= amount
        total = self._open[order.symbol].side(order.side)
        total.amount -= amount
        total.value -= amount * order.price

    def apply_fill(
        self,
        symbol: str,
        side: Side,
        amount: Decimal,
        price: Decimal,
        fee_quote: Decimal,
        fee_base: Decimal,
        at: datetime,
    ) -> list[ClosedTrade]:
        """Book one fill; the trades it closed (none, or one). The whole fee of a fill goes to
        the trade it opens, adds to or closes."""
        if fee_base:
            # Paid in the base currency: the fill moved less (buy) or more (sell) base for the
            # same quote, which is the same as a fill at a worse price.
            quote = amount * price
            amount = amount - fee_base if side is Side.BUY else amount + fee_base
            if amount <= 0:
                raise ValueError("a fill's base fee is not smaller than its amount")
            price = quote / amount
        self._version += 1
        position = self.positions.setdefault(symbol, Position())
        signed = amount if side is Side.BUY else -amount
        if position.qty == 0 or (position.qty > 0) == (signed > 0):
            if position.qty == 0:
                position.opened_at = at
            size = abs(position.qty)
            position.avg_price = (position.avg_price * size + price * amount) / (size + amount)
            position.qty += signed
            position.trade_pnl -= fee_quote
            self.realized -= fee_quote
            return []
        direction = 1 if position.qty > 0 else -1
        pnl = (price - position.avg_price) * min(amount, abs(position.qty)) * direction - fee_quote
        position.trade_pnl += pnl
        self.realized += pnl
        position.qty += signed
        if position.qty != 0 and (position.qty > 0) == (direction > 0):
            return []
        closed = ClosedTrade(symbol, position.trade_pnl, position.opened_at, at)
        position.trade_pnl = ZERO
        flipped = position.qty != 0
        position.opened_at = at if flipped else None
        position.avg_price = price if flipped else ZERO
        return [closed]

    def unrealized(self, marks: dict[str, Decimal]) -> Decimal:
        return sum(
            (p.unrealized(marks[s]) for s, p in self.positions.items() if p.qty and s in marks),
            ZERO,
        )


def worst_size(
    qty: Decimal, buys: Decimal, sells: Decimal, buy: Decimal = ZERO, sell: Decimal = ZERO
) -> Decimal:
    """The largest position a signed `qty` could reach if the open `buys` and `sells` (and a
    new `buy` or `sell`) all filled."""
    long = abs(qty + buys + buy)
    short = abs(qty - sells - sell)
    return short if short > long else long


def _price(symbol: str, marks: Mapping[str, Decimal], position: Position | None) -> Decimal:
    """What a symbol is valued at: its mark, else the position's average price, else zero."""
    mark = marks.get(symbol)
    if mark is not None:
        return mark
    return position.avg_price if position else ZERO
