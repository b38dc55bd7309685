"""What the risk engine answers: an approval, or a denial with a reason code from one enum.

A denial's message names the limit and the value (`max_open_orders is 5; the bot has 5 open`),
never a secret. Codes are stable strings: the audit log, metrics and the bot all see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tradeguard.core.errors import TradeguardError
from tradeguard.venues.types import OrderRequest

__all__ = ["Approval", "Denial", "Reason", "RiskDenied"]


class Reason(StrEnum):
    # the order itself
    MALFORMED = "malformed"  # a NaN, negative or zero size, an unknown side or type
    UNKNOWN_BOT = "unknown_bot"
    UNKNOWN_MARKET = "unknown_market"
    MARKET_NOT_ENABLED = "market_not_enabled"  # exists, but not in the bot's symbols
    MARKET_INACTIVE = "market_inactive"
    UNSUPPORTED = "unsupported"  # a side, type or flag the market does not take
    # the market's own limits (tradeguard.venues.precision.Breach values)
    AMOUNT_STEP = "amount_step"
    AMOUNT_MIN = "amount_min"
    AMOUNT_MAX = "amount_max"
    PRICE_TICK = "price_tick"
    PRICE_DIGITS = "price_digits"
    PRICE_MIN = "price_min"
    PRICE_MAX = "price_max"
    NOTIONAL_MIN = "notional_min"
    NOTIONAL_MAX = "notional_max"
    # the bot's and the user's limits
    NO_PRICE = "no_price"  # no last trade price to value the order against
    PRICE_BAND = "price_band"
    ORDER_NOTIONAL = "order_notional"
    POSITION_NOTIONAL = "position_notional"
    BOT_EXPOSURE = "bot_exposure"
    USER_EXPOSURE = "user_exposure"
    OPEN_ORDERS = "open_orders"
    SUBMIT_RATE = "submit_rate"
    MODIFY_RATE = "modify_rate"
    BALANCE = "balance"  # a cash account cannot pay for it with its open orders
    MARGIN = "margin"  # a margin account's free margin does not cover it
    SPOT_SHORT = "spot_short"  # selling on spot more than the bot holds
    REDUCE_ONLY = "reduce_only"  # reduce-only that would not reduce
    ZONE = "zone"  # a directional entry in a blocked volatility zone
    # trading states
    HALTED = "halted"
    REDUCING = "reducing"
    UNKNOWN_ORDER = "unknown_order"  # a modification of an order the bot does not have


@dataclass(frozen=True, slots=True)
class Denial:
    reason: Reason
    message: str

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Approval:
    """An order that passed every check, its amount on the market's step. `reference` is the
    price it was valued at (the limit price, or the last trade price for a market order)."""

    request: OrderRequest
    reference: Decimal

    def __bool__(self) -> bool:
        return True


class RiskDenied(TradeguardError):
    """The risk engine refused an order; `reason` is the code."""

    exit_code = 1

    def __init__(self, denial: Denial) -> None:
        super().__init__(f"risk: {denial.reason}: {denial.message}")
        self.reason = denial.reason
        self.denial = denial
