"""An order as a bot sends it, before anything about it is trusted.

`OrderIntent` holds whatever came in (a side that may not be a side, a NaN amount); `parse`
turns it into a checked `OrderRequest` or a `MALFORMED` denial that says which field is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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


def _bad(message: str) -> Denial:
    return Denial(Reason.MALFORMED, message)


def _number(name: str, value: object, optional: bool) -> Decimal | Denial | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return _bad(f"{name} must be a decimal number, not {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        return _bad(f"{name} is {number}; it must be a finite number")
    if number <= 0:
        return _bad(f"{name} is {number}; it must be positive")
    return number


_SIDES = {m.value: m for m in Side}
_TYPES = {m.value: m for m in OrderType}
_TIFS = {m.value: m for m in TimeInForce}


def _choice(name: str, value: object, choices: dict[str, Any]) -> Denial | None:
    if not isinstance(value, str) or value not in choices:
        return _bad(f"{name} must be one of {', '.join(sorted(choices))}")
    return None


def parse(intent: OrderIntent | OrderRequest) -> OrderRequest | Denial:
    if isinstance(intent, OrderRequest):
        # built by our own code, so its shape is right; its numbers may still be infinite
        for name in ("amount", "price", "stop_price"):
            checked = _number(name, getattr(intent, name), name != "amount")
            if isinstance(checked, Denial):
                return checked
        return intent
    cid = intent.client_order_id
    if not isinstance(cid, str) or not 1 <= len(cid) <= 64 or not cid.isprintable():
        return _bad("client_order_id must be 1 to 64 printable characters")
    if not isinstance(intent.symbol, str) or not 1 <= len(intent.symbol) <= 64:
        return _bad("symbol must be a market symbol such as BTC/USDT")
    for name, choices in (("side", _SIDES), ("type", _TYPES), ("time_in_force", _TIFS)):
        denial = _choice(name, getattr(intent, name), choices)
        if denial is not None:
            return denial
    if not isinstance(intent.reduce_only, bool):
        return _bad("reduce_only must be true or false")
    numbers: dict[str, Decimal | None] = {}
    for name, optional in (("amount", False), ("price", True), ("stop_price", True)):
        checked = _number(name, getattr(intent, name), optional)
        if isinstance(checked, Denial):
            return checked
        numbers[name] = checked
    amount = numbers["amount"]
    assert amount is not None  # noqa: S101 - _number refuses a missing amount
    try:
        return OrderRequest(
            client_order_id=cid,
            symbol=intent.symbol,
            side=_SIDES[intent.side],
            type=_TYPES[intent.type],
            amount=amount,
            price=numbers["price"],
            stop_price=numbers["stop_price"],
            time_in_force=_TIFS[intent.time_in_force],
            reduce_only=intent.reduce_only,
        )
    except ValueError as error:
        return _bad(str(error))
