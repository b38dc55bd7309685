"""Venues: the protocol, the paper venue, ccxt venues and their key-permission checks."""

from tradeguard.venues.client_ids import check_client_order_id, new_client_order_id
from tradeguard.venues.protocol import Venue
from tradeguard.venues.types import (
    Balance,
    BalanceLine,
    KeyPermissions,
    Liquidity,
    Market,
    MarketKind,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Trade,
)

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
    "Venue",
    "check_client_order_id",
    "new_client_order_id",
]
