"""The paper venue's settings: fees, slippage, leverage and what a new account starts with."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from tradeguard.core.errors import ConfigError

__all__ = ["MAX_BPS", "MAX_LEVERAGE", "PaperConfig"]

MAX_BPS = Decimal(1000)  # 10%: a fee or slippage above that is a typo, not a market
MAX_LEVERAGE = Decimal(125)
_CURRENCY = re.compile(r"[A-Za-z0-9._-]{1,32}")


def _decimal(name: str, value: Decimal | int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ConfigError(f"paper venue: {name} is a Decimal (got {type(value).__name__})")
    value = Decimal(value)
    if not value.is_finite():
        raise ConfigError(f"paper venue: {name} must be a finite number")
    return value


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Fees and slippage in basis points (1 bps = 0.01%), each between 0 and 1000.

    Fees are charged in the quote currency of each fill: `maker_fee_bps` on a resting limit
    order's fill, `taker_fee_bps` on market and stop orders and on limits that cross on arrival.
    `slippage_bps` moves every taker fill against the order (a buy pays more, a sell gets less),
    never past a limit price. `leverage` (1 to 125) is for perpetual markets, which the paper
    venue does not simulate yet. `starting_balances` funds an account the first time it opens;
    an existing account keeps its balances whatever this says.
    """

    maker_fee_bps: Decimal = Decimal(10)
    taker_fee_bps: Decimal = Decimal(10)
    slippage_bps: Decimal = Decimal(5)
    leverage: Decimal = Decimal(1)
    starting_balances: Mapping[str, Decimal] = field(
        default_factory=lambda: MappingProxyType({"USDT": Decimal(10_000)})
    )

    def __post_init__(self) -> None:
        for name in ("maker_fee_bps", "taker_fee_bps", "slippage_bps"):
            value = _decimal(name, getattr(self, name))
            if not 0 <= value <= MAX_BPS:
                raise ConfigError(
                    f"paper venue: {name} is {value}; it must be between 0 and {MAX_BPS} bps"
                )
            object.__setattr__(self, name, value)
        leverage = _decimal("leverage", self.leverage)
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise ConfigError(
                f"paper venue: leverage is {leverage}; it must be between 1 and {MAX_LEVERAGE}"
            )
        object.__setattr__(self, "leverage", leverage)
        balances: dict[str, Decimal] = {}
        for currency, amount in self.starting_balances.items():
            if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
                raise ConfigError(
                    f"paper venue: starting balance currency {currency!r} is not a currency "
                    "code (letters, digits, . _ -, at most 32)"
                )
            value = _decimal(f"the starting balance of {currency}", amount)
            if value < 0:
                raise ConfigError(
                    f"paper venue: the starting balance of {currency} is {value}; it must not "
                    "be negative"
                )
            balances[currency] = value
        object.__setattr__(self, "starting_balances", MappingProxyType(balances))

    @property
    def max_fee_bps(self) -> Decimal:
        return max(self.maker_fee_bps, self.taker_fee_bps)
