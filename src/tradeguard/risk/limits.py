"""Risk limits: a bot's, its user's ceilings, and the operator's floor under live trading.

Limits are read from plain mappings (a bot's `bot.toml` `[risk]` table, a user's settings) and
refused at load, naming the field, when a key is unknown, a value is the wrong type, a limit
contradicts another or a bot asks for more than its user's ceiling. Percentages are percent
(`5` is 5%). `None` for a limit means "no limit"; a live bot may not remove or loosen a circuit
breaker past the operator's ceiling (`OperatorPolicy.check_live`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError
from tradeguard.risk.zones import Zone

__all__ = [
    "BotLimits",
    "Breakers",
    "OperatorPolicy",
    "PromotionThresholds",
    "UserLimits",
    "bot_limits_from",
    "breakers_from",
    "breakers_to_table",
    "user_limits_from",
]

MAX_LEVERAGE = Decimal(125)
_WHERE = "risk limits"


def _decimal(where: str, name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal | float):
        raise ConfigError(f"{where}: {name} must be a number, not {type(value).__name__}")
    try:
        # floats from TOML go through str, so 0.1 stays 0.1
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{where}: {name} must be a number") from None
    if not number.is_finite() or number <= 0:
        raise ConfigError(f"{where}: {name} must be a positive number (got {number})")
    return number


def _count(where: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {name} must be a whole number of at least 1 (got {value!r})")
    return value


def _percent(where: str, name: str, value: object) -> Decimal:
    number = _decimal(where, name, value)
    if number > 100:
        raise ConfigError(f"{where}: {name} is a percentage; {number} is above 100")
    return number


@dataclass(frozen=True, slots=True)
class Breakers:
    """Post-trade circuit breakers of one bot. Defaults from the seeds; `None` removes one."""

    max_consecutive_losses: int | None = 3
    max_daily_loss_pct: Decimal | None = Decimal(5)
    max_drawdown_pct: Decimal | None = Decimal(25)
    warn_at_pct: Decimal = Decimal(80)  # a warning event at this share of any limit

    def looser_than(self, ceiling: Breakers) -> list[str]:
        """The breakers removed or set looser than `ceiling`, by field name."""
        looser = []
        for name in ("max_consecutive_losses", "max_daily_loss_pct", "max_drawdown_pct"):
            mine, cap = getattr(self, name), getattr(ceiling, name)
            if cap is not None and (mine is None or mine > cap):
                looser.append(name)
        return looser


@dataclass(frozen=True, slots=True)
class BotLimits:
    """Everything the pre-trade checks and breakers hold one bot to.

    `capital` is the equity the bot trades with: daily loss and drawdown are fractions of it
    (plus its PnL). `symbols` are the markets enabled for the bot. Notional limits are in the
    market's quote currency.
    """

    capital: Decimal
    symbols: frozenset[str]
    max_order_notional: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_open_orders: int = 10
    max_submits_per_minute: int = 60
    max_modifies_per_minute: int = 60
    price_band_pct: Decimal = Decimal(5)
    leverage: Decimal = Decimal(1)
    blocked_zones: frozenset[Zone] = frozenset({Zone.Z4, Zone.Z5})
    close_positions_on_trip: bool = False
    breakers: Breakers = field(default_factory=Breakers)

    def __post_init__(self) -> None:
        where = _WHERE
        if not self.symbols:
            raise ConfigError(f"{where}: symbols is empty; enable at least one market")
        if self.leverage < 1 or self.leverage > MAX_LEVERAGE:
            raise ConfigError(f"{where}: leverage is {self.leverage}; it is 1 to {MAX_LEVERAGE}")
        order, position, gross = (
            self.max_order_notional,
            self.max_position_notional,
            self.max_gross_exposure,
        )
        if order is not None and position is not None and order > position:
            raise ConfigError(
                f"{where}: max_order_notional ({order}) is above max_position_notional "
                f"({position}); one order could never be placed whole"
            )
        if position is not None and gross is not None and position > gross:
            raise ConfigError(
                f"{where}: max_position_notional ({position}) is above max_gross_exposure "
                f"({gross}); lower the position limit or raise the exposure limit"
            )
        warn = self.breakers.warn_at_pct
        if not 0 < warn < 100:
            raise ConfigError(f"{where}: warn_at_pct is {warn}; it is between 0 and 100")


_BOT_NUMBERS = ("max_order_notional", "max_position_notional", "max_gross_exposure")
_BOT_COUNTS = ("max_open_orders", "max_submits_per_minute", "max_modifies_per_minute")
_BREAKERS = ("max_consecutive_losses", "max_daily_loss_pct", "max_drawdown_pct", "warn_at_pct")


def _known(where: str, raw: Mapping[str, Any], names: set[str]) -> None:
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(names))}"
        )


def _optional(raw: Mapping[str, Any], name: str) -> tuple[bool, object]:
    """(given, value); a given value of "none" or false removes the limit."""
    if name not in raw:
        return False, None
    value = raw[name]
    return True, None if value is False or value == "none" else value


def bot_limits_from(raw: Mapping[str, Any], where: str = "bot.toml [risk]") -> BotLimits:
    """A bot's limits from its config table; `ConfigError` naming the field on bad input."""
    names = {
        "capital",
        "symbols",
        *_BOT_NUMBERS,
        *_BOT_COUNTS,
        "price_band_pct",
        "leverage",
        "blocked_zones",
        "close_positions_on_trip",
        *_BREAKERS,
    }
    _known(where, raw, names)
    if "capital" not in raw:
        raise ConfigError(f"{where}: capital is missing; set the equity this bot trades with")
    symbols = raw.get("symbols")
    if not isinstance(symbols, list | tuple) or not all(isinstance(s, str) for s in symbols):
        raise ConfigError(f"{where}: symbols must be a list of market symbols like 'BTC/USDT'")
    values: dict[str, Any] = {
        "capital": _decimal(where, "capital", raw["capital"]),
        "symbols": frozenset(symbols),
    }
    for name in _BOT_NUMBERS:
        given, value = _optional(raw, name)
        if given:
            values[name] = None if value is None else _decimal(where, name, value)
    for name in _BOT_COUNTS:
        if name in raw:
            values[name] = _count(where, name, raw[name])
    for name in ("price_band_pct", "leverage"):
        if name in raw:
            values[name] = _decimal(where, name, raw[name])
    if "price_band_pct" in values:
        values["price_band_pct"] = _percent(where, "price_band_pct", values["price_band_pct"])
    if "blocked_zones" in raw:
        values["blocked_zones"] = _zones(where, raw["blocked_zones"])
    if "close_positions_on_trip" in raw:
        flag = raw["close_positions_on_trip"]
        if not isinstance(flag, bool):
            raise ConfigError(f"{where}: close_positions_on_trip must be true or false")
        values["close_positions_on_trip"] = flag
    values["breakers"] = _breakers(where, raw)
    try:
        return BotLimits(**values)
    except ConfigError as error:
        # the cross-field checks know no file: name the one this came from
        raise ConfigError(error.message.replace(_WHERE, where, 1)) from None


def _zones(where: str, raw: object) -> frozenset[Zone]:
    known = ", ".join(z.value for z in Zone)
    if not isinstance(raw, list | tuple):
        raise ConfigError(f"{where}: blocked_zones must be a list of zones ({known})")
    zones = set()
    for item in raw:
        if item not in {z.value for z in Zone}:
            raise ConfigError(f"{where}: blocked_zones has {item!r}; zones are {known}")
        zones.add(Zone(item))
    return frozenset(zones)


def breakers_to_table(breakers: Breakers) -> dict[str, Any]:
    """`breakers` in the `[risk]` table's own spelling ("none" for a removed one), so that
    `breakers_from` reads it back exactly (the store keeps a bot's breakers this way)."""

    def spelt(value: int | Decimal | None) -> int | str:
        return "none" if value is None else value if isinstance(value, int) else str(value)

    return {
        "max_consecutive_losses": spelt(breakers.max_consecutive_losses),
        "max_daily_loss_pct": spelt(breakers.max_daily_loss_pct),
        "max_drawdown_pct": spelt(breakers.max_drawdown_pct),
        "warn_at_pct": spelt(breakers.warn_at_pct),
    }


def breakers_from(raw: Mapping[str, Any], where: str = "bot.toml [risk]") -> Breakers:
    """The breaker settings of a `[risk]` table (other keys are ignored)."""
    return _breakers(where, raw)


def _breakers(where: str, raw: Mapping[str, Any]) -> Breakers:
    values: dict[str, Any] = {}
    given, value = _optional(raw, "max_consecutive_losses")
    if given:
        values["max_consecutive_losses"] = (
            None if value is None else _count(where, "max_consecutive_losses", value)
        )
    for name in ("max_daily_loss_pct", "max_drawdown_pct"):
        given, value = _optional(raw, name)
        if given:
            values[name] = None if value is None else _percent(where, name, value)
    if "warn_at_pct" in raw:
        values["warn_at_pct"] = _percent(where, "warn_at_pct", raw["warn_at_pct"])
    return Breakers(**values)


@dataclass(frozen=True, slots=True)
class UserLimits:
    """A user's ceilings over all of their bots, and the portfolio breaker.

    A bot whose limit is above one of these (or has none where the user sets one) is refused at
    load (`check_bot`). `max_portfolio_drawdown_pct` trips an emergency stop of the user.
    """

    max_gross_exposure: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_open_orders: int | None = None
    max_portfolio_drawdown_pct: Decimal | None = Decimal(40)

    def check_bot(self, bot: BotLimits, where: str = "bot.toml [risk]") -> None:
        for name in ("max_order_notional", "max_position_notional", "max_open_orders"):
            ceiling, mine = getattr(self, name), getattr(bot, name)
            if ceiling is not None and (mine is None or mine > ceiling):
                shown = "no limit" if mine is None else mine
                raise ConfigError(
                    f"{where}: {name} is {shown}, above the user's ceiling of {ceiling}; "
                    "lower it or ask an admin to raise the ceiling"
                )
        ceiling, mine = self.max_gross_exposure, bot.max_gross_exposure
        # a bot without its own exposure limit is held to the user's at every order
        if ceiling is not None and mine is not None and mine > ceiling:
            raise ConfigError(
                f"{where}: max_gross_exposure is {mine}, above the user's ceiling of {ceiling}"
            )


def user_limits_from(raw: Mapping[str, Any], where: str = "user risk limits") -> UserLimits:
    names = {
        "max_gross_exposure",
        "max_order_notional",
        "max_position_notional",
        "max_open_orders",
        "max_portfolio_drawdown_pct",
    }
    _known(where, raw, names)
    values: dict[str, Any] = {}
    for name in ("max_gross_exposure", "max_order_notional", "max_position_notional"):
        given, value = _optional(raw, name)
        if given:
            values[name] = None if value is None else _decimal(where, name, value)
    given, value = _optional(raw, "max_open_orders")
    if given:
        values["max_open_orders"] = (
            None if value is None else _count(where, "max_open_orders", value)
        )
    given, value = _optional(raw, "max_portfolio_drawdown_pct")
    if given:
        values["max_portfolio_drawdown_pct"] = (
            None if value is None else _percent(where, "max_portfolio_drawdown_pct", value)
        )
    limits = UserLimits(**values)
    for low, high in (
        ("max_order_notional", "max_position_notional"),
        ("max_position_notional", "max_gross_exposure"),
    ):
        small, large = getattr(limits, low), getattr(limits, high)
        if small is not None and large is not None and small > large:
            raise ConfigError(f"{where}: {low} ({small}) is above {high} ({large})")
    return limits


@dataclass(frozen=True, slots=True)
class PromotionThresholds:
    """What a paper record must show before a bot may trade live (defaults from the seeds)."""

    min_trades: int = 100
    min_win_rate_pct: Decimal = Decimal(60)
    min_profit_factor: Decimal = Decimal("1.5")
    max_drawdown_pct: Decimal = Decimal(15)


@dataclass(frozen=True, slots=True)
class OperatorPolicy:
    """The operator's floor under live trading: the loosest breakers a live bot may have, the
    portfolio breaker no live user may remove, and the promotion thresholds."""

    live_breakers: Breakers = field(default_factory=Breakers)
    max_portfolio_drawdown_pct: Decimal = Decimal(40)
    promotion: PromotionThresholds = field(default_factory=PromotionThresholds)

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorPolicy:
        """The policy the operator set (`TRADEGUARD_RISK_LIVE_*`, `TRADEGUARD_PROMOTION_*`)."""
        return cls(
            live_breakers=Breakers(
                max_consecutive_losses=settings.risk_live_max_consecutive_losses,
                max_daily_loss_pct=settings.risk_live_max_daily_loss_pct,
                max_drawdown_pct=settings.risk_live_max_drawdown_pct,
            ),
            max_portfolio_drawdown_pct=settings.risk_max_portfolio_drawdown_pct,
            promotion=PromotionThresholds(
                min_trades=settings.promotion_min_trades,
                min_win_rate_pct=settings.promotion_min_win_rate_pct,
                min_profit_factor=settings.promotion_min_profit_factor,
                max_drawdown_pct=settings.promotion_max_drawdown_pct,
            ),
        )

    def check_live(self, bot: str, limits: BotLimits, user: UserLimits) -> None:
        """`ConfigError` if a live bot removes or loosens a breaker past the ceiling."""
        looser = limits.breakers.looser_than(self.live_breakers)
        if looser:
            name = looser[0]
            mine = getattr(limits.breakers, name)
            cap = getattr(self.live_breakers, name)
            shown = "removed" if mine is None else f"set to {mine}"
            raise ConfigError(
                f"bot {bot}: {name} is {shown}; a live bot may not go past the operator "
                f"ceiling of {cap} (paper bots may)"
            )
        portfolio = user.max_portfolio_drawdown_pct
        if portfolio is None or portfolio > self.max_portfolio_drawdown_pct:
            shown = "removed" if portfolio is None else f"set to {portfolio}"
            raise ConfigError(
                f"bot {bot}: the user's max_portfolio_drawdown_pct is {shown}; live trading "
                f"needs it at or under the operator ceiling of {self.max_portfolio_drawdown_pct}"
            )
