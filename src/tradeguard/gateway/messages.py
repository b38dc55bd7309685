"""What a bot may ask the gateway, checked field by field before anything acts on it.

`parse_request` turns one decoded frame into a typed request or a `BadRequest` that says which
field is wrong. Nothing here trusts the bot: unknown ops and unknown fields are refused, strings
are length-bounded and numbers must be decimal strings (a JSON float would carry binary
rounding into an order amount).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "BadRequest",
    "Cancel",
    "PlaceOrder",
    "Query",
    "Ready",
    "Request",
    "parse_request",
]

_NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class BadRequest:
    id: int | None
    message: str


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    id: int
    connection: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str
    reduce_only: bool


@dataclass(frozen=True, slots=True)
class Cancel:
    id: int
    connection: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    op: str  # ping | open_orders | positions | balance
    connection: str | None
    symbol: str | None


@dataclass(frozen=True, slots=True)
class Ready:
    """On a simulated clock: the bot has handled every event up to `at_ms` (a replay waits for
    it before the next candle, so a fast feed cannot outrun the strategy)."""

    id: int
    at_ms: int


Request = PlaceOrder | Cancel | Query | Ready

_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # op -> (required, optional) fields
    "order": (
        {"connection", "symbol", "side", "type", "amount"},
        {"price", "stop_price", "time_in_force", "reduce_only"},
    ),
    "cancel": ({"connection", "client_order_id"}, set()),
    "open_orders": ({"connection"}, {"symbol"}),
    "positions": ({"connection"}, set()),
    "balance": ({"connection"}, set()),
    "ping": (set(), set()),
    "ready": ({"at_ms"}, set()),
}


class _Invalid(Exception):
    pass


def _text(message: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = message.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= _NAME_MAX or not value.isprintable():
        raise _Invalid(f"{name} must be a string of 1 to {_NAME_MAX} printable characters")
    return value


def _decimal(message: dict[str, Any], name: str, *, optional: bool = False) -> Decimal | None:
    value = message.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise _Invalid(f'{name} must be a decimal string such as "0.5", not {value!r:.40}')
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _Invalid(f"{name} {value!r} is not a decimal number") from None
    if not number.is_finite() or number <= 0:
        raise _Invalid(f"{name} is {value}; it must be a positive finite number")
    return number


def _known_fields(op: str, message: dict[str, Any]) -> None:
    required, optional = _FIELDS[op]
    given = set(message) - {"id", "op"}
    if missing := required - given:
        raise _Invalid(f"{op} needs {', '.join(sorted(missing))}")
    if unknown := given - required - optional:
        raise _Invalid(f"{op} takes no {', '.join(sorted(unknown))}")


def _build(ident: int, op: str, message: dict[str, Any]) -> Request:
    _known_fields(op, message)
    if op == "order":
        reduce_only = message.get("reduce_only", False)
        if not isinstance(reduce_only, bool):
            raise _Invalid("reduce_only must be true or false")
        return PlaceOrder(
            ident,
            str(_text(message, "connection")),
            str(_text(message, "symbol")),
            str(_text(message, "side")),
            str(_text(message, "type")),
            _decimal(message, "amount") or Decimal(0),
            _decimal(message, "price", optional=True),
            _decimal(message, "stop_price", optional=True),
            _text(message, "time_in_force", optional=True) or "GTC",
            reduce_only,
        )
    if op == "ready":
        at_ms = message["at_ms"]
        if isinstance(at_ms, bool) or not isinstance(at_ms, int) or not 0 <= at_ms < 2**53:
            raise _Invalid("at_ms must be a time in UTC milliseconds")
        return Ready(ident, at_ms)
    if op == "cancel":
        return Cancel(
            ident, str(_text(message, "connection")), str(_text(message, "client_order_id"))
        )
    return Query(
        ident,
        op,
        _text(message, "connection", optional=True),
        _text(message, "symbol", optional=True),
    )


def parse_request(message: dict[str, Any]) -> Request | BadRequest:
    """One request from a bot, checked; never raises."""
    ident = message.get("id")
    if isinstance(ident, bool) or not isinstance(ident, int) or not 0 < ident < 2**53:
        return BadRequest(None, "every request needs an integer id above 0")
    op = message.get("op")
    if not isinstance(op, str) or op not in _FIELDS:
        return BadRequest(ident, f"op must be one of {', '.join(sorted(_FIELDS))}")
    try:
        return _build(ident, op, message)
    except _Invalid as error:
        return BadRequest(ident, str(error))
