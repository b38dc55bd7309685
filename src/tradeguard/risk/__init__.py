"""The risk engine: the checks every order passes on its way to a venue, trading states per
scope, circuit breakers from fills and marks, volatility zones, and the paper-to-live
promotion gate. See docs/risk.md."""

from tradeguard.risk.book import BotBook, ClosedTrade, OpenOrder, Position
from tradeguard.risk.breakers import Breaker, Reading
from tradeguard.risk.decisions import Approval, Denial, Reason, RiskDenied
from tradeguard.risk.engine import Mode, RiskEngine, Trip
from tradeguard.risk.intents import OrderIntent
from tradeguard.risk.limits import (
    BotLimits,
    Breakers,
    OperatorPolicy,
    PromotionThresholds,
    UserLimits,
    bot_limits_from,
    user_limits_from,
)
from tradeguard.risk.states import GLOBAL, Scope, ScopeKind, TradingState
from tradeguard.risk.store import SqlRiskStore
from tradeguard.risk.zones import Zone, ZoneConfig

__all__ = [
    "GLOBAL",
    "Approval",
    "BotBook",
    "BotLimits",
    "Breaker",
    "Breakers",
    "ClosedTrade",
    "Denial",
    "Mode",
    "OpenOrder",
    "OperatorPolicy",
    "OrderIntent",
    "Position",
    "PromotionThresholds",
    "Reading",
    "Reason",
    "RiskDenied",
    "RiskEngine",
    "Scope",
    "ScopeKind",
    "SqlRiskStore",
    "TradingState",
    "Trip",
    "UserLimits",
    "Zone",
    "ZoneConfig",
    "bot_limits_from",
    "user_limits_from",
]
