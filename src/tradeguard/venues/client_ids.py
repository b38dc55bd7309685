"""Client order ids that every venue accepts.

One format: `0x` and 32 lowercase hex digits (16 random bytes). It is a valid Hyperliquid
`cloid` (16-byte hex), fits Bybit's `orderLinkId` (at most 36 characters) and Binance's
`newClientOrderId` (`^[.A-Z:/a-z0-9_-]{1,36}$`).
"""

from __future__ import annotations

import re
import secrets

from tradeguard.core.errors import InvalidOrder

__all__ = ["check_client_order_id", "new_client_order_id", "one_order_id"]

_FORMAT = re.compile(r"0x[0-9a-f]{32}")


def new_client_order_id() -> str:
    return "0x" + secrets.token_hex(16)


def check_client_order_id(value: str) -> str:
    if not _FORMAT.fullmatch(value):
        raise ValueError("a client order id is 0x followed by 32 lowercase hex digits")
    return value


def one_order_id(venue: str, venue_order_id: str | None, client_order_id: str | None) -> str:
    """An order is named by exactly one of its ids (the `Venue` protocol's lookups and
    cancels); returns the one given."""
    if (venue_order_id is None) == (client_order_id is None):
        raise InvalidOrder(
            f"{venue}: pass exactly one of venue_order_id or client_order_id", venue=venue
        )
    return venue_order_id or client_order_id or ""
