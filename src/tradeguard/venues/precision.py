"""An order against its market's limits, before anything is sent.

Amounts are rounded *down* to the market's step (never more than asked). Prices are not
rounded: a limit price off the tick is refused, because moving it would change what the caller
meant; `round_price` is there for callers that want the conservative tick (down for a buy, up
for a sell). Every refusal names the market's limit and the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from tradeguard.core.errors import InvalidOrder
from tradeguard.venues.types import Market, OrderRequest, OrderType, Side

__all__ = [
    "Breach",
    "Problem",
    "check_order",
    "checked_order",
    "market_for",
    "round_amount",
    "round_price",
]


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


class Breach(StrEnum):
    """Which market limit an order breaks; the risk engine reports these as reason codes."""

    AMOUNT_STEP = "amount_step"
    AMOUNT_MIN = "amount_min"
    AMOUNT_MAX = "amount_max"
    PRICE_TICK = "price_tick"
    PRICE_DIGITS = "price_digits"
    PRICE_MIN = "price_min"
    PRICE_MAX = "price_max"
    NOTIONAL_MIN = "notional_min"
    NOTIONAL_MAX = "notional_max"


@dataclass(frozen=True, slots=True)
class Problem:
    breach: Breach
    message: str


def checked_order(
    market: Market, request: OrderRequest, venue: str, reference_price: Decimal | None = None
) -> OrderRequest:
    """The request with its amount on the step; `InvalidOrder` if it breaks a limit.

    `reference_price` values a market order's notional (the last price); without one, a market
    order's notional limits are left to the venue.
    """
    checked = check_order(market, request, f"{venue} {market.symbol}", reference_price)
    if isinstance(checked, Problem):
        raise InvalidOrder(checked.message, venue=venue)
    return checked


def check_order(
    market: Market, request: OrderRequest, label: str, reference_price: Decimal | None = None
) -> OrderRequest | Problem:
    """The request with its amount rounded down to the step, or the first limit it breaks
    (messages start with `label`)."""
    amount = round_amount(market, request.amount)
    if amount <= 0:
        return Problem(
            Breach.AMOUNT_STEP,
            f"{label}: amount {request.amount} is below the amount step {market.amount_step}",
        )
    problem = _range(label, "amount", amount, market.min_amount, market.max_amount)
    if problem:
        return problem
    for name, price in (("price", request.price), ("stop price", request.stop_price)):
        if price is None:
            continue
        if price % market.price_tick != 0:
            return Problem(
                Breach.PRICE_TICK,
                f"{label}: {name} {price} is not a multiple of the tick {market.price_tick}",
            )
        digits = market.price_significant_digits
        if digits is not None and len(price.normalize().as_tuple().digits) > digits:
            return Problem(
                Breach.PRICE_DIGITS,
                f"{label}: {name} {price} has more than {digits} significant digits",
            )
        problem = _range(label, name, price, market.min_price, market.max_price)
        if problem:
            return problem
    valued_at = request.price if request.type is not OrderType.MARKET else reference_price
    if valued_at is None:
        valued_at = request.stop_price
    if valued_at is not None and not request.reduce_only:
        notional = amount * valued_at
        problem = _range(label, "notional", notional, market.min_notional, market.max_notional)
        if problem:
            return problem
    if amount == request.amount:
        return request
    return dataclasses.replace(request, amount=amount)


def _range(
    label: str, name: str, value: Decimal, low: Decimal | None, high: Decimal | None
) -> Problem | None:
    kind = name.split()[-1]  # "stop price" is held to the price limits
    if low is not None and value < low:
        return Problem(Breach(f"{kind}_min"), f"{label}: {name} {value} is below the minimum {low}")
    if high is not None and value > high:
        return Problem(
            Breach(f"{kind}_max"), f"{label}: {name} {value} is above the maximum {high}"
        )
    return None
