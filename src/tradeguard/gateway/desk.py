"""`Desk`: what the gateway does with a checked request, and where fills and candles go.

    desk = Desk(engine)
    desk.add_account("paper:alice", guard, venue="paper", key="paper***")
    desk.add_bot(identity, deliver)              # deliver(event) reaches the bot's socket
    reply = await desk.handle(identity, request)  # RiskDenied / VenueError, or the reply body
    await desk.on_candle("ETH/BTC", "5m", candle)   # paper fills, marks, breakers, candle events

Every order goes through the account's `GuardedVenue`: risk check, journal, durable audit
intent, then the venue. The desk only decides which account a bot's named connection is, and
turns orders, fills and positions into the plain dicts the SDK reads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradeguard.core.errors import OrderNotFound, TradeguardError, VenueError
from tradeguard.gateway.messages import Cancel, PlaceOrder, Query, Ready, Request
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.risk.decisions import RiskDenied
from tradeguard.risk.engine import RiskEngine
from tradeguard.risk.guard import GuardedVenue
from tradeguard.risk.intents import OrderIntent
from tradeguard.venues.client_ids import new_client_order_id
from tradeguard.venues.paper.venue import PaperVenue
from tradeguard.venues.types import Order, Trade

__all__ = ["BotIdentity", "Deliver", "Desk", "UnknownConnection", "order_event", "refusal"]

log = logging.getLogger("tradeguard.gateway")

Deliver = Callable[[dict[str, Any]], None]


class UnknownConnection(LookupError):
    """A bot named a connection it may not use."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def refusal(error: Exception) -> tuple[str, str]:
    """(code, message) of the error reply for a refused request; messages are ours and name
    no secret. `internal` for anything unexpected (the caller logs it)."""
    if isinstance(error, RiskDenied):
        return f"risk.{error.denial.reason.value}", error.denial.message
    if isinstance(error, UnknownConnection):
        return "bad_request", str(error)
    if isinstance(error, OrderNotFound):
        return "not_found", str(error)
    if isinstance(error, VenueError):
        return f"venue.{_snake(type(error).__name__)}", str(error)
    if isinstance(error, TradeguardError):
        return _snake(type(error).__name__), str(error)
    return "internal", "the gateway could not handle this request; it is logged"


@dataclass(frozen=True)
class BotIdentity:
    """Who a bot is, as the supervisor registered it. `name` is its id in the risk engine."""

    name: str
    id: str  # UUID: state dir, logs
    user: str
    mode: str  # paper | live
    symbols: tuple[str, ...]
    timeframe: str
    connections: Mapping[str, str]  # connection name -> account
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Account:
    guard: GuardedVenue
    venue: str
    key: str  # masked


def _num(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def order_event(connection: str, order: Order) -> dict[str, Any]:
    return {
        "connection": connection,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "status": order.status.value,
        "amount": str(order.amount),
        "filled": str(order.filled),
        "price": _num(order.price),
        "average": _num(order.average),
    }


def _fill_event(connection: str, trade: Trade) -> dict[str, Any]:
    return {
        "connection": connection,
        "client_order_id": trade.client_order_id,
        "symbol": trade.symbol,
        "side": trade.side.value,
        "amount": str(trade.amount),
        "price": str(trade.price),
        "fee": str(trade.fee),
        "fee_currency": trade.fee_currency,
        "ts_ms": int(trade.at.timestamp() * 1000),
    }


def _candle_event(symbol: str, timeframe: str, candle: Candle) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "ts_ms": candle.ts_ms,
        "open": str(candle.open),
        "high": str(candle.high),
        "low": str(candle.low),
        "close": str(candle.close),
        "volume": str(candle.volume),
    }


class Desk:
    """`client_ids` makes the client order ids (random by default; a backtest passes a
    counter, so that the same run gives the same ids)."""

    def __init__(
        self, engine: RiskEngine, *, client_ids: Callable[[], str] = new_client_order_id
    ) -> None:
        self.engine = engine
        self._client_ids = client_ids
        self._accounts: dict[str, _Account] = {}
        self._bots: dict[str, tuple[BotIdentity, Deliver]] = {}

    # -- wiring --------------------------------------------------------------------------------

    def add_account(self, account: str, guard: GuardedVenue, *, venue: str, key: str) -> None:
        self._accounts[account] = _Account(guard, venue, key)

    def guard(self, account: str) -> GuardedVenue:
        return self._accounts[account].guard

    def add_bot(self, bot: BotIdentity, deliver: Deliver) -> None:
        for account in bot.connections.values():
            if account not in self._accounts:
                raise UnknownConnection(f"bot {bot.name}: no account {account} on this desk")
        self._bots[bot.name] = (bot, deliver)

    def remove_bot(self, name: str) -> None:
        self._bots.pop(name, None)

    def hello(self, bot: BotIdentity, *, simulated: bool = False) -> dict[str, Any]:
        """What the bot learns at hello: who it is and which connections it has."""
        return {
            "bot": {
                "name": bot.name,
                "id": bot.id,
                "mode": bot.mode,
                "symbols": list(bot.symbols),
                "timeframe": bot.timeframe,
                "params": dict(bot.params),
            },
            "connections": [
                {"name": name, "venue": self._accounts[acc].venue, "key": self._accounts[acc].key}
                for name, acc in bot.connections.items()
            ],
            "default_connection": next(iter(bot.connections), None),
            "clock": "simulated" if simulated else "real",
        }

    def _account(self, bot: BotIdentity, connection: str | None) -> tuple[str, _Account]:
        account = bot.connections.get(connection or "")
        if account is None:
            allowed = ", ".join(sorted(bot.connections)) or "none"
            raise UnknownConnection(f"no connection {connection!r}; this bot may use: {allowed}")
        return connection or "", self._accounts[account]

    # -- requests ------------------------------------------------------------------------------

    async def handle(self, bot: BotIdentity, request: Request) -> dict[str, Any]:
        """The reply body for one request. Raises `RiskDenied`, `VenueError`, `UnknownConnection`
        for a refusal; the server turns those into error replies."""
        if isinstance(request, PlaceOrder):
            return await self._place(bot, request)
        if isinstance(request, Cancel):
            return await self._cancel(bot, request)
        if isinstance(request, Ready):
            return {}
        return await self._query(bot, request)

    async def _place(self, bot: BotIdentity, request: PlaceOrder) -> dict[str, Any]:
        name, account = self._account(bot, request.connection)
        intent = OrderIntent(
            self._client_ids(),
            request.symbol,
            request.side,
            request.type,
            request.amount,
            request.price,
            request.stop_price,
            request.time_in_force,
            request.reduce_only,
        )
        order = await account.guard.submit(bot.name, intent)
        return {"order": order_event(name, order)}

    async def _cancel(self, bot: BotIdentity, request: Cancel) -> dict[str, Any]:
        name, account = self._account(bot, request.connection)
        open_order = self.engine.book(bot.name).orders.get(request.client_order_id)
        if open_order is None or account.guard.owner(request.client_order_id) != bot.name:
            raise OrderNotFound(
                f"no open order {request.client_order_id!r} of this bot on {name}",
                venue=account.venue,
            )
        order = await account.guard.cancel(bot.name, open_order.symbol, request.client_order_id)
        return {"order": None if order is None else order_event(name, order)}

    async def _query(self, bot: BotIdentity, request: Query) -> dict[str, Any]:
        if request.op == "ping":
            return {}
        name, account = self._account(bot, request.connection)
        book = self.engine.book(bot.name)
        if request.op == "positions":
            return {
                "positions": [
                    {"symbol": s, "quantity": str(p.qty), "entry_price": _num(p.avg_price or None)}
                    for s, p in book.positions.items()
                    if p.qty
                ]
            }
        if request.op == "balance":
            balance = await account.guard.venue.fetch_balance()
            return {
                "balances": [
                    {"currency": c, "free": str(line.free), "used": str(line.used)}
                    for c, line in balance.lines.items()
                ]
            }
        # open_orders: the bot's own, never another bot's on a shared account
        mine = [
            cid
            for cid, o in book.orders.items()
            if request.symbol is None or o.symbol == request.symbol
        ]
        orders = [
            await account.guard.venue.fetch_order(book.orders[cid].symbol, client_order_id=cid)
            for cid in mine
        ]
        return {"orders": [order_event(name, o) for o in orders if o.status.value == "open"]}

    # -- what comes back from venues -----------------------------------------------------------

    def _connection_of(self, bot: BotIdentity, account: str) -> str:
        return next(name for name, acc in bot.connections.items() if acc == account)

    async def on_trades(self, account: str, trades: list[Trade]) -> None:
        """Fills on one account: book them (breakers may trip), then tell their bots."""
        guard = self._accounts[account].guard
        owners = [(t, guard.owner(t.client_order_id or "")) for t in trades]
        await guard.on_trades(trades)
        for trade, owner in owners:
            entry = self._bots.get(owner or "")
            if entry is None:
                continue
            bot, deliver = entry
            connection = self._connection_of(bot, account)
            at_ms = int(trade.at.timestamp() * 1000)
            deliver({"event": "fill", "at_ms": at_ms, "fill": _fill_event(connection, trade)})
            order = await guard.venue.fetch_order(
                trade.symbol, client_order_id=trade.client_order_id
            )
            if order.status.is_final:
                deliver({"event": "order", "at_ms": at_ms, "order": order_event(connection, order)})

    async def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """A closed candle: paper accounts fill what it triggers, marks and breakers move,
        then the bots that follow the symbol see it."""
        await self.settle(symbol, candle)
        at_ms = candle.ts_ms + Timeframe.parse(timeframe).ms
        event = {
            "event": "candle",
            "at_ms": at_ms,
            "candle": _candle_event(symbol, timeframe, candle),
        }
        for bot, deliver in self._bots.values():
            if symbol in bot.symbols and timeframe == bot.timeframe:
                deliver(event)

    async def settle(self, symbol: str, candle: Candle) -> None:
        """What a closed candle does before any bot sees it: paper accounts fill the orders it
        reaches (their bots get the fill events), then marks, zones and breakers move."""
        for account, entry in self._accounts.items():
            venue = entry.guard.venue
            if isinstance(venue, PaperVenue) and symbol in await venue.load_markets():
                trades = await venue.on_candle(symbol, candle)
                if trades:
                    await self.on_trades(account, trades)
            await entry.guard.on_close(symbol, candle.close)
