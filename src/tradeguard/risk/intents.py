"""An order as a bot sends it, before anything about it is trusted.

`OrderIntent` holds whatever came in (a side that may not be a side, a NaN amount); `parse`
turns it into a checked `OrderRequest` or a `MALFORMED` denial that says which field is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from tradeguard.risk.decisions import Denial, Reason
from tradeguard.venues.types import OrderRequest, OrderType, Side, TimeInForce

__all__ = ["OrderIntent", "parse"]


@dataclass(frozen=True, slots=True)
class OrderIntent:
    client_order_id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "GTC"
    reduce_only: bool = False


_Member = TypeVar("_Member", Side, OrderType, TimeInForce)


def _bad(message: str) -> Denial:
    return Denial(Reason.MALFORMED, message)


def _number(name: str, value: object, optional: bool) -> Decimal | Denial | None:
    if value is None and optional:
        return None
    if type(value) is not Decimal:  # a Decimal is taken as it is; a subclass is converted
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            return _bad(f"{name} must be a decimal number, not {type(value).__name__}")
        value = Decimal(value)
    if not value.is_finite():
        return _bad(f"{name} is {value}; it must be a finite number")
    if value <= 0:
        return _bad(f"{name} is {value}; it must be positive")
    return value


_SIDES = {m.value: m for m in Side}
_TYPES = {m.value: m for m in OrderType}
_TIFS = {m.value: m for m in TimeInForce}


def _choice(name: str, value: object, choices: dict[str, _Member]) -> _Member | Denial:
    member = choices.get(value) if isinstance(value, str) else None
    if member is None:
        return _bad(f"{name} must be one of {', '.join(sorted(choices))}")
    return member


def parse(intent: OrderIntent | OrderRequest) -> OrderRequest | Denial:
    if isinstance(intent, OrderRequest):
        # built by our own code, so its shape is right; its numbers may still be infinite
        for name in ("amount", "price", "stop_price"):
            checked = _number(name, getattr(intent, name), name != "amount")
            if isinstance(checked, Denial):
                return checked
        return intent
    cid, symbol = intent.client_order_id, intent.symbol
    if not isinstance(cid, str) or not 1 <= len(cid) <= 64 or not cid.isprintable():
        return _bad("client_order_id must be 1 to 64 printable characters")
    if not isinstance(symbol, str) or not 1 <= len(symbol) <= 64:
        return _bad("symbol must be a market symbol such as BTC/USDT")
    side = _choice("side", intent.side, _SIDES)
    if isinstance(side, Denial):
        return side
    kind = _choice("type", intent.type, _TYPES)
    if isinstance(kind, Denial):
        return kind
    time_in_force = _choice("time_in_force", intent.time_in_force, _TIFS)
    if isinstance(time_in_force, Denial):
        return time_in_force
    if not isinstance(intent.reduce_only, bool):
        return _bad("reduce_only must be true or false")
    amount = _number("amount", intent.amount, False)
    if isinstance(amount, Denial):
        return amount
    price = _number("price", intent.price, True)
    if isinstance(price, Denial):
        return price
    stop_price = _number("stop_price", intent.stop_price, True)
    if isinstance(stop_price, Denial):
        return stop_price
    assert amount is not None  # noqa: S101 - _number refuses a missing amount
    try:
        return OrderRequest(
            client_order_id=cid,
            symbol=symbol,
            side=side,
            type=kind,
            amount=amount,
            price=price,
            stop_price=stop_price,
            time_in_force=time_in_force,
            reduce_only=intent.reduce_only,
        )
    except ValueError as error:
        return _bad(str(error))
