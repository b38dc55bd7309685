"""ccxt's unified dicts in, tradeguard's types out: floats become `Decimal` (through `str`, so
0.1 stays 0.1), and a reply that breaks ccxt's own contract is a `MalformedReply`, never a
half-filled object."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradeguard.core.errors import MalformedReply
from tradeguard.venues.types import (
    Balance,
    BalanceLine,
    Liquidity,
    Market,
    MarketKind,
    Order,
    OrderStatus,
    OrderType,
    Side,
    Trade,
)

__all__ = ["to_balance", "to_market", "to_order", "to_trade"]

TICK_SIZE = 4  # ccxt's precision modes (ccxt.base.decimal_to_precision); else decimal places

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}


def decimal(value: object, what: str, venue: str, *, optional: bool = False) -> Decimal:
    if value is None or value == "":
        if optional:
            return Decimal(0)
        raise MalformedReply(f"{venue} reply has no {what}", venue=venue)
    if isinstance(value, bool):
        raise MalformedReply(f"{venue} reply {what} is not a number", venue=venue)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise MalformedReply(f"{venue} reply {what} is not a number", venue=venue) from None
    if not number.is_finite():
        raise MalformedReply(f"{venue} reply {what} is not a finite number", venue=venue)
    return number


def _maybe(value: object, what: str, venue: str) -> Decimal | None:
    return None if value is None or value == "" else decimal(value, what, venue)


def _text(value: object, what: str, venue: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise MalformedReply(f"{venue} reply has no {what}", venue=venue)
    return value


def _time(ms: object) -> datetime | None:
    if ms is None or isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)


def _step(precision: object, mode: int, what: str, venue: str) -> Decimal:
    value = decimal(precision, f"{what} precision", venue)
    if mode == TICK_SIZE:
        if value <= 0:
            raise MalformedReply(f"{venue} {what} tick is not positive", venue=venue)
        return value
    return Decimal(1).scaleb(-int(value))  # DECIMAL_PLACES (and digits, as decimals)


def to_market(
    raw: Mapping[str, Any], precision_mode: int, venue: str, sig_digits: int | None = None
) -> Market:
    symbol = _text(raw.get("symbol"), "market symbol", venue)
    kind = {"spot": MarketKind.SPOT, "swap": MarketKind.SWAP}.get(str(raw.get("type")))
    if kind is None:
        raise MalformedReply(f"{venue} market {symbol} has type {raw.get('type')!r}", venue=venue)
    precision = raw.get("precision") or {}
    limits = raw.get("limits") or {}

    def limit(group: str, end: str) -> Decimal | None:
        return _maybe((limits.get(group) or {}).get(end), f"{symbol} {group} {end}", venue)

    return Market(
        symbol=symbol,
        venue_symbol=_text(raw.get("id"), f"{symbol} id", venue),
        base=_text(raw.get("base"), f"{symbol} base", venue),
        quote=_text(raw.get("quote"), f"{symbol} quote", venue),
        kind=kind,
        price_tick=_step(precision.get("price"), precision_mode, f"{symbol} price", venue),
        amount_step=_step(precision.get("amount"), precision_mode, f"{symbol} amount", venue),
        min_amount=limit("amount", "min"),
        max_amount=limit("amount", "max"),
        min_price=limit("price", "min"),
        max_price=limit("price", "max"),
        min_notional=limit("cost", "min"),
        max_notional=limit("cost", "max"),
        active=raw.get("active") is not False,
        settle=raw.get("settle") or None,
        price_significant_digits=sig_digits,
    )


def _order_type(raw: Mapping[str, Any], venue: str) -> tuple[OrderType, Decimal | None]:
    stop = raw.get("triggerPrice") or raw.get("stopPrice")
    kind = str(raw.get("type") or "").lower()
    if stop:
        limit = kind in ("limit", "stop_limit")
        stop_price = decimal(stop, "order stop price", venue)
        return (OrderType.STOP_LIMIT if limit else OrderType.STOP_MARKET), stop_price
    if kind in ("market", "limit"):
        return OrderType(kind), None
    if kind in ("stop", "stop_market", "stop_loss"):
        return OrderType.STOP_MARKET, None
    return OrderType.LIMIT, None  # venue-specific names of resting orders (e.g. "ioc")


def to_order(raw: Mapping[str, Any], venue: str) -> Order:
    order_id = _text(raw.get("id"), "order id", venue)
    status = _STATUS.get(str(raw.get("status")))
    amount = decimal(raw.get("amount"), f"order {order_id} amount", venue)
    filled = decimal(raw.get("filled"), f"order {order_id} filled", venue, optional=True)
    if status is None:
        raise MalformedReply(
            f"{venue} order {order_id} has status {raw.get('status')!r}", venue=venue
        )
    if status is OrderStatus.FILLED and filled < amount:
        status = OrderStatus.CANCELED  # ccxt says "closed" for partly filled then done, too
    side = str(raw.get("side"))
    if side not in ("buy", "sell"):
        raise MalformedReply(f"{venue} order {order_id} has side {side!r}", venue=venue)
    order_type, stop_price = _order_type(raw, venue)
    fee = raw.get("fee") or {}
    return Order(
        venue_order_id=order_id,
        client_order_id=raw.get("clientOrderId") or None,
        symbol=_text(raw.get("symbol"), f"order {order_id} symbol", venue),
        side=Side(side),
        type=order_type,
        status=status,
        amount=amount,
        filled=filled,
        price=_maybe(raw.get("price"), f"order {order_id} price", venue) or None,
        average=_maybe(raw.get("average"), f"order {order_id} average", venue) or None,
        stop_price=stop_price,
        created_at=_time(raw.get("timestamp")),
        updated_at=_time(raw.get("lastUpdateTimestamp") or raw.get("lastTradeTimestamp")),
        reduce_only=bool(raw.get("reduceOnly")),
        fee=decimal(fee.get("cost"), f"order {order_id} fee", venue, optional=True),
        fee_currency=fee.get("currency") or None,
    )


def to_trade(raw: Mapping[str, Any], venue: str) -> Trade:
    trade_id = _text(raw.get("id"), "trade id", venue)
    side = str(raw.get("side"))
    if side not in ("buy", "sell"):
        raise MalformedReply(f"{venue} trade {trade_id} has side {side!r}", venue=venue)
    fee = raw.get("fee") or {}
    at = _time(raw.get("timestamp"))
    if at is None:
        raise MalformedReply(f"{venue} trade {trade_id} has no time", venue=venue)
    info = raw.get("info") or {}
    client_id = raw.get("clientOrderId") or info.get("orderLinkId") or info.get("cloid")
    return Trade(
        trade_id=trade_id,
        venue_order_id=_text(raw.get("order"), f"trade {trade_id} order id", venue),
        client_order_id=client_id or None,
        symbol=_text(raw.get("symbol"), f"trade {trade_id} symbol", venue),
        side=Side(side),
        price=decimal(raw.get("price"), f"trade {trade_id} price", venue),
        amount=decimal(raw.get("amount"), f"trade {trade_id} amount", venue),
        fee=decimal(fee.get("cost"), f"trade {trade_id} fee", venue, optional=True),
        fee_currency=str(fee.get("currency") or ""),
        liquidity=Liquidity.MAKER if raw.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        at=at,
    )


def to_balance(raw: Mapping[str, Any], venue: str) -> Balance:
    free = raw.get("free") or {}
    used = raw.get("used") or {}
    lines: dict[str, BalanceLine] = {}
    for currency in sorted(set(free) | set(used)):
        line = BalanceLine(
            free=decimal(free.get(currency), f"{currency} free", venue, optional=True),
            used=decimal(used.get(currency), f"{currency} used", venue, optional=True),
        )
        if line.total:
            lines[currency] = line
    return Balance(lines)
