"""What a bot sees: candles, orders, fills, positions and balances, all with `Decimal` numbers.

Each type is built from a gateway message with `from_wire`, which trusts nothing beyond the
shape it checks: the gateway is trusted, but a bug must surface as a clear error in the bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = ["Balance", "Candle", "Fill", "GatewayError", "Order", "OrderRejected", "Position"]


class GatewayError(Exception):
    """The gateway refused a request; `code` says why (`risk.*` codes come from the risk
    engine, `bad_request` from the message check, `venue.*` from the venue)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OrderRejected(GatewayError):
    """An order the risk engine or the venue refused. Nothing was sent or booked."""


def _dec(raw: dict[str, Any], name: str) -> Decimal:
    return Decimal(str(raw[name]))


def _opt_dec(raw: dict[str, Any], name: str) -> Decimal | None:
    value = raw.get(name)
    return None if value is None else Decimal(str(value))


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Candle:
    symbol: str
    timeframe: str
    ts_ms: int  # the bar's open time, UTC milliseconds
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def at(self) -> datetime:
        return _time(self.ts_ms)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Candle:
        return cls(
            raw["symbol"],
            raw["timeframe"],
            int(raw["ts_ms"]),
            *(_dec(raw, n) for n in ("open", "high", "low", "close", "volume")),
        )


@dataclass(frozen=True, slots=True)
class Order:
    connection: str
    client_order_id: str
    symbol: str
    side: str  # buy | sell
    type: str  # market | limit | ...
    status: str  # open | filled | canceled | rejected | expired
    amount: Decimal
    filled: Decimal
    price: Decimal | None
    average: Decimal | None

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Order:
        return cls(
            raw["connection"],
            raw["client_order_id"],
            raw["symbol"],
            raw["side"],
            raw["type"],
            raw["status"],
            _dec(raw, "amount"),
            _dec(raw, "filled"),
            _opt_dec(raw, "price"),
            _opt_dec(raw, "average"),
        )


@dataclass(frozen=True, slots=True)
class Fill:
    connection: str
    client_order_id: str
    symbol: str
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    ts_ms: int

    @property
    def at(self) -> datetime:
        return _time(self.ts_ms)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Fill:
        return cls(
            raw["connection"],
            raw["client_order_id"],
            raw["symbol"],
            raw["side"],
            _dec(raw, "amount"),
            _dec(raw, "price"),
            _dec(raw, "fee"),
            raw.get("fee_currency"),
            int(raw["ts_ms"]),
        )


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    quantity: Decimal  # signed: negative is short
    entry_price: Decimal | None

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Position:
        return cls(raw["symbol"], _dec(raw, "quantity"), _opt_dec(raw, "entry_price"))


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    free: Decimal
    used: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.used

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Balance:
        return cls(raw["currency"], _dec(raw, "free"), _dec(raw, "used"))
