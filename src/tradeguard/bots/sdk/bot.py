"""`Bot`, the class a strategy subclasses, and what it is given: connections, a log, a small
persisted state and a clock. None of it holds or can reach a secret."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .client import Requester
from .types import Balance, Candle, Fill, Order, Position

__all__ = ["Bot", "Clock", "Connection", "State"]

STATE_LIMIT = 1024 * 1024  # bytes of JSON: the state is for a few values, not a database


def _number(value: Decimal | int | str, name: str) -> str:
    """A quantity or price for the wire: Decimal, int or a decimal string; never a float,
    whose binary rounding would change the amount."""
    if isinstance(value, float | bool):
        raise TypeError(f"{name} must be a Decimal, an int or a decimal string, not a float")
    return str(Decimal(value))


class Connection:
    """A venue account the bot may trade on. Every method goes through the gateway, which holds
    the key; this object knows only the connection's name, venue and a masked key id."""

    __slots__ = ("_client", "key", "name", "venue")

    def __init__(self, client: Requester, name: str, venue: str, key: str) -> None:
        self._client = client
        self.name = name
        self.venue = venue
        self.key = key  # masked by the gateway: 'ABC***'

    def __repr__(self) -> str:
        return f"Connection(name={self.name!r}, venue={self.venue!r}, key={self.key!r})"

    async def _order(self, **fields: Any) -> Order:
        reply = await self._client.request("order", connection=self.name, **fields)
        return Order.from_wire(reply["order"])

    async def buy(self, symbol: str, amount: Decimal | int | str) -> Order:
        """A market buy of `amount` (base currency)."""
        return await self._order(
            symbol=symbol, side="buy", type="market", amount=_number(amount, "amount")
        )

    async def sell(self, symbol: str, amount: Decimal | int | str) -> Order:
        """A market sell of `amount` (base currency)."""
        return await self._order(
            symbol=symbol, side="sell", type="market", amount=_number(amount, "amount")
        )

    async def limit(
        self,
        symbol: str,
        side: str,
        amount: Decimal | int | str,
        price: Decimal | int | str,
        *,
        time_in_force: str = "GTC",
        reduce_only: bool = False,
    ) -> Order:
        """A limit order; `side` is 'buy' or 'sell'."""
        return await self._order(
            symbol=symbol,
            side=side,
            type="limit",
            amount=_number(amount, "amount"),
            price=_number(price, "price"),
            time_in_force=time_in_force,
            reduce_only=reduce_only,
        )

    async def cancel(self, order: Order | str) -> Order | None:
        """Cancel one of this bot's orders (an `Order` or its client order id); None if it had
        already ended. Always allowed, even when trading is halted."""
        cid = order.client_order_id if isinstance(order, Order) else order
        reply = await self._client.request("cancel", connection=self.name, client_order_id=cid)
        raw = reply.get("order")
        return None if raw is None else Order.from_wire(raw)

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        reply = await self._client.request("open_orders", connection=self.name, symbol=symbol)
        return [Order.from_wire(o) for o in reply["orders"]]

    async def positions(self) -> list[Position]:
        reply = await self._client.request("positions", connection=self.name)
        return [Position.from_wire(p) for p in reply["positions"]]

    async def balance(self) -> dict[str, Balance]:
        reply = await self._client.request("balance", connection=self.name)
        return {b["currency"]: Balance.from_wire(b) for b in reply["balances"]}


class State:
    """A small key-value store of JSON values, saved in the bot's state dir after every change
    (atomically: a crash leaves the old or the new state, never half of one). `durable` also
    syncs each save to disk (survives a power cut); a replay or backtest, whose state is
    thrown away with it, skips that."""

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self._path = path
        self._durable = durable
        self._data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        data = dict(self._data)
        del data[key]
        self._save(data)

    def update(self, values: dict[str, Any]) -> None:
        for key in values:
            if not isinstance(key, str):
                raise TypeError(f"state keys are strings, not {type(key).__name__}")
        self._save({**self._data, **values})

    def _save(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, sort_keys=True, default=str)
        if len(text) > STATE_LIMIT:
            raise ValueError(f"state of {len(text)} bytes is over the {STATE_LIMIT}-byte limit")
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".state-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
                if self._durable:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._data = json.loads(text)


class Clock:
    """The bot's time. Live and paper runs read the system clock; a replay or backtest moves
    it to each event's time, so a strategy reads the same code path in both."""

    def __init__(self, simulated: bool) -> None:
        self.simulated = simulated
        self._ms: int | None = None

    def now(self) -> datetime:
        if self.simulated and self._ms is not None:
            return datetime.fromtimestamp(self._ms / 1000, UTC)
        return datetime.now(UTC)

    def _advance(self, ms: int) -> None:
        if self._ms is None or ms > self._ms:
            self._ms = ms


class Bot:
    """Subclass this in `bot.py` and override the callbacks you need (sync or async)."""

    name: str
    symbols: tuple[str, ...]
    timeframe: str
    mode: str
    params: dict[str, Any]
    log: logging.Logger
    state: State
    clock: Clock
    _connections: dict[str, Connection]

    def _attach(self, hello: dict[str, Any], client: Requester, state_dir: Path) -> None:
        bot = hello["bot"]
        self.name = bot["name"]
        self.symbols = tuple(bot["symbols"])
        self.timeframe = bot["timeframe"]
        self.mode = bot["mode"]
        self.params = dict(bot.get("params") or {})
        self.log = logging.getLogger(f"bot.{self.name}")
        simulated = hello.get("clock") == "simulated"
        self.state = State(state_dir / "state.json", durable=not simulated)
        self.clock = Clock(simulated)
        self._connections = {
            c["name"]: Connection(client, c["name"], c["venue"], c["key"])
            for c in hello["connections"]
        }
        self._default_connection = hello.get("default_connection")

    def connection(self, name: str | None = None) -> Connection:
        """The named connection, or without a name the one the bot was created with
        (`bots create --connection`)."""
        name = name or self._default_connection or ""
        try:
            return self._connections[name]
        except KeyError:
            allowed = ", ".join(sorted(self._connections)) or "none"
            raise KeyError(f"this bot has no connection {name!r}; it may use: {allowed}") from None

    async def on_start(self) -> None:
        """Called once, before the first event."""

    async def on_candle(self, candle: Candle) -> None:
        """A candle of one of the bot's symbols has closed."""

    async def on_fill(self, fill: Fill) -> None:
        """One of the bot's orders (partly) filled."""

    async def on_order_update(self, order: Order) -> None:
        """One of the bot's orders changed status (filled, canceled, expired, rejected)."""

    async def on_stop(self) -> None:
        """Called once when the bot is stopped; keep it short."""
