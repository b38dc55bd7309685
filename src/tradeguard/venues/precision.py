"""An order against its market's limits, before anything is sent.

Amounts are rounded *down* to the market's step (never more than asked). Prices are not
rounded: a limit price off the tick is refused, because moving it would change what the caller
meant; `round_price` is there for callers that want the conservative tick (down for a buy, up
for a sell). Every refusal names the market's limit and the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from tradeguard.core.errors import InvalidOrder
from tradeguard.venues.types import Market, OrderRequest, OrderType, Side

__all__ = ["checked_order", "market_for", "round_amount", "round_price"]


def market_for(markets: Mapping[str, Market], symbol: str, venue: str) -> Market:
    market = markets.get(symbol)
    if market is None:
        raise InvalidOrder(
            f"{venue} has no market {symbol!r}; symbols look like BTC/USDT (spot) or "
            f"BTC/USDT:USDT (perpetual)",
            venue=venue,
        )
    if not market.active:
        raise InvalidOrder(f"{venue} market {symbol} is not trading now", venue=venue)
    return market


def _to_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


def round_amount(market: Market, amount: Decimal) -> Decimal:
    return _to_step(amount, market.amount_step, ROUND_FLOOR).normalize()


def round_price(market: Market, price: Decimal, side: Side) -> Decimal:
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    return _to_step(price, market.price_tick, rounding).normalize()


def checked_order(
    market: Market, request: OrderRequest, venue: str, reference_price: Decimal | None = None
) -> OrderRequest:
    """The request with its amount on the step; `InvalidOrder` if it breaks a limit.

    `reference_price` values a market order's notional (the last price); without one, a market
    order's notional limits are left to the venue.
    """
    amount = round_amount(market, request.amount)
    label = f"{venue} {market.symbol}"
    if amount <= 0:
        raise InvalidOrder(
            f"{label}: amount {request.amount} is below the amount step {market.amount_step}",
            venue=venue,
        )
    _check_range(label, "amount", amount, market.min_amount, market.max_amount, venue)
    for name, price in (("price", request.price), ("stop price", request.stop_price)):
        if price is None:
            continue
        if price % market.price_tick != 0:
            raise InvalidOrder(
                f"{label}: {name} {price} is not a multiple of the tick {market.price_tick}",
                venue=venue,
            )
        digits = market.price_significant_digits
        if digits is not None and len(price.normalize().as_tuple().digits) > digits:
            raise InvalidOrder(
                f"{label}: {name} {price} has more than {digits} significant digits",
                venue=venue,
            )
        _check_range(label, name, price, market.min_price, market.max_price, venue)
    valued_at = request.price if request.type is not OrderType.MARKET else reference_price
    if valued_at is None:
        valued_at = request.stop_price
    if valued_at is not None and not request.reduce_only:
        notional = amount * valued_at
        _check_range(label, "notional", notional, market.min_notional, market.max_notional, venue)
    return dataclasses.replace(request, amount=amount)


def _check_range(
    label: str,
    name: str,
    value: Decimal,
    low: Decimal | None,
    high: Decimal | None,
    venue: str,
) -> None:
    if low is not None and value < low:
        raise InvalidOrder(f"{label}: {name} {value} is below the minimum {low}", venue=venue)
    if high is not None and value > high:
        raise InvalidOrder(f"{label}: {name} {value} is above the maximum {high}", venue=venue)
