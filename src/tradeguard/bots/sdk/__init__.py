"""The tradeguard SDK: the one tradeguard module a bot imports (`from tradeguard.sdk import
Bot`). It talks only to the bot's gateway socket; it holds no key, reaches no database and
imports nothing of tradeguard outside this package (each bot's virtualenv holds a copy of it
and nothing else of tradeguard)."""

from .bot import Bot, Clock, Connection, State
from .types import Balance, Candle, Fill, GatewayError, Order, OrderRejected, Position

__all__ = [
    "Balance",
    "Bot",
    "Candle",
    "Clock",
    "Connection",
    "Fill",
    "GatewayError",
    "Order",
    "OrderRejected",
    "Position",
    "State",
]
