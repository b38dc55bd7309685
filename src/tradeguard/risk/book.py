"""One bot's book: its positions, its open orders and its closed trades, from its own fills.

A position is signed (long > 0, short < 0) with an average entry price. A *trade* runs from
flat to flat: it opens with the first fill on a flat symbol and closes when the position is
back at zero; a fill that flips the position closes one trade and opens the next. A trade's PnL
is everything it realized, fees of every fill included (a fee charged in the base currency
counts as a worse fill price; fees in a third currency, such as a venue token, are not
counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tradeguard.venues.types import MarketKind, Side

__all__ = ["BotBook", "ClosedTrade", "OpenOrder", "Position"]

ZERO = Decimal(0)


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
class BotBook:
    """Change `orders` only through `add_order`, `end_order` and `fill_order`: they keep the
    per-symbol open totals the pre-trade checks read in O(1)."""

    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, OpenOrder] = field(default_factory=dict)
    realized: Decimal = ZERO  # all closed and partly closed PnL, fees included
    _open: dict[tuple[str, Side], Decimal] = field(default_factory=dict)

    def qty(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.qty if position else ZERO

    def open_amount(self, symbol: str, side: Side, *, reduce_only: bool | None = None) -> Decimal:
        if reduce_only is None:
            return self._open.get((symbol, side), ZERO)
        return sum(
            (
                o.remaining
                for o in self.orders.values()
                if o.symbol == symbol and o.side is side and o.reduce_only is reduce_only
            ),
            ZERO,
        )

    def worst(self, symbol: str, buy: Decimal = ZERO, sell: Decimal = ZERO) -> Decimal:
        """The largest position `symbol` could reach if every open order (plus `buy` or
        `sell`) filled: the exposure the limits hold a bot to."""
        position = self.positions.get(symbol)
        qty = position.qty if position else ZERO
        long = qty + self._open.get((symbol, Side.BUY), ZERO) + buy
        short = qty - self._open.get((symbol, Side.SELL), ZERO) - sell
        return max(abs(long), abs(short))

    def exposed_symbols(self, also: str | None = None) -> set[str]:
        """Symbols with a position or an open order (and `also`)."""
        symbols = {s for s, p in self.positions.items() if p.qty}
        symbols.update(s for s, _ in self._open)
        if also is not None:
            symbols.add(also)
        return symbols

    def add_order(self, order: OpenOrder) -> None:
        self.end_order(order.client_order_id)
        self.orders[order.client_order_id] = order
        key = (order.symbol, order.side)
        self._open[key] = self._open.get(key, ZERO) + order.remaining

    def end_order(self, client_order_id: str) -> OpenOrder | None:
        order = self.orders.pop(client_order_id, None)
        if order is not None:
            key = (order.symbol, order.side)
            left = self._open[key] - order.remaining
            if left:
                self._open[key] = left
            else:
                del self._open[key]
        return order

    def fill_order(self, client_order_id: str, amount: Decimal) -> None:
        """A fill of `amount` of an open order: it ends when nothing remains."""
        order = self.orders.get(client_order_id)
        if order is None:
            return
        if amount >= order.remaining:
            self.end_order(client_order_id)
            return
        order.remaining -= amount
        key = (order.symbol, order.side)
        self._open[key] -= amount

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
