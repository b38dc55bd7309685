"""Trading-domain values every venue speaks: markets, order requests, orders, trades, balances,
key permissions. Money and quantities are `Decimal`; times are aware UTC datetimes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "Balance",
    "BalanceLine",
    "KeyPermissions",
    "Liquidity",
    "Market",
    "MarketKind",
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
    "Trade",
]


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"  # a market order once the stop price trades
    STOP_LIMIT = "stop_limit"  # a limit order once the stop price trades


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "PO"


class OrderStatus(StrEnum):
    OPEN = "open"  # accepted, resting (possibly partly filled)
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self is not OrderStatus.OPEN


class MarketKind(StrEnum):
    SPOT = "spot"
    SWAP = "swap"  # perpetual futures (Binance USDⓈ-M, Bybit linear, Hyperliquid perps)


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class Market:
    """A tradable market and the limits an order must meet before it is sent.

    `price_tick` and `amount_step` are the increments a price and an amount must be multiples
    of; a `None` limit means the venue sets none.
    """

    symbol: str  # unified: BTC/USDT (spot), BTC/USDT:USDT (linear perpetual)
    venue_symbol: str  # the venue's own id: BTCUSDT, BTC
    base: str
    quote: str
    kind: MarketKind
    price_tick: Decimal
    amount_step: Decimal
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_notional: Decimal | None = None
    max_notional: Decimal | None = None
    active: bool = True
    settle: str | None = None  # the margin currency of a perpetual
    # Some venues (Hyperliquid) also cap a price's significant digits, whatever the tick.
    price_significant_digits: int | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a caller asks a venue to do. `client_order_id` makes the request idempotent: the
    gateway generates it, stores it, and a retry after an unknown outcome reuses it."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None = None  # limit price (LIMIT, STOP_LIMIT)
    stop_price: Decimal | None = None  # trigger (STOP_MARKET, STOP_LIMIT)
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("an order amount is positive")
        needs_price = self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        if needs_price != (self.price is not None):
            raise ValueError(f"a {self.type} order {'needs' if needs_price else 'takes no'} price")
        needs_stop = self.type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
        if needs_stop != (self.stop_price is not None):
            raise ValueError(
                f"a {self.type} order {'needs' if needs_stop else 'takes no'} stop price"
            )
        for value in (self.price, self.stop_price):
            if value is not None and value <= 0:
                raise ValueError("prices are positive")


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the venue last reported it."""

    venue_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    amount: Decimal
    filled: Decimal
    price: Decimal | None  # limit price
    average: Decimal | None  # average fill price, once something filled
    stop_price: Decimal | None
    created_at: datetime | None
    updated_at: datetime | None = None
    reduce_only: bool = False
    fee: Decimal = Decimal(0)  # in fee_currency, summed over this order's fills
    fee_currency: str | None = None

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill of one of our orders."""

    trade_id: str
    venue_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    at: datetime

    @property
    def notional(self) -> Decimal:
        return self.price * self.amount


@dataclass(frozen=True, slots=True)
class BalanceLine:
    free: Decimal
    used: Decimal  # held by open orders (or as margin)

    @property
    def total(self) -> Decimal:
        return self.free + self.used


@dataclass(frozen=True, slots=True)
class Balance:
    """Per currency: free and used. Currencies with nothing in them are left out."""

    lines: Mapping[str, BalanceLine]

    def free(self, currency: str) -> Decimal:
        line = self.lines.get(currency)
        return line.free if line else Decimal(0)

    def total(self, currency: str) -> Decimal:
        line = self.lines.get(currency)
        return line.total if line else Decimal(0)


@dataclass(frozen=True, slots=True)
class KeyPermissions:
    """What a venue key can do, as the venue itself reports it.

    `can_withdraw` and `can_transfer` are the ones that make a key dangerous: either lets a thief
    move funds off the account. `trade_kinds` names the markets the key may trade. `raw` is the
    venue's reply with every secret-looking value left out; it is kept for the audit log.
    """

    can_read: bool
    can_trade: bool
    can_withdraw: bool
    can_transfer: bool
    ip_restricted: bool | None  # None: the venue has no IP allow-lists (Hyperliquid, paper)
    expires_at: datetime | None
    trade_kinds: frozenset[MarketKind] = frozenset()
    raw: Mapping[str, object] = field(default_factory=dict)

    @property
    def moves_funds(self) -> bool:
        return self.can_withdraw or self.can_transfer
