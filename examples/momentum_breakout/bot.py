"""Momentum breakout: buy when a close breaks above the highest of the previous `lookback`
closes, sell the position when a close breaks below their lowest (a Donchian channel on closes).

It uses a third-party package, more-itertools (see requirements.txt), for the channel: one
`minmax` pass over the window instead of a `min` and a `max`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from more_itertools import minmax

from tradeguard.sdk import Bot, Candle, Fill, GatewayError, Order

_DONE = {"filled", "canceled", "rejected", "expired"}


class MomentumBreakout(Bot):
    async def on_start(self) -> None:
        params: dict[str, Any] = getattr(self, "params", {})
        self.lookback = int(params.get("lookback", 12))
        self.amount = Decimal(str(params.get("amount", "0.5")))
        # the connection the bot was created with (`bots create --connection`)
        self.venue = self.connection()
        if self.lookback < 2 or self.amount <= 0:
            raise ValueError("params: lookback must be at least 2 and amount positive")
        self.log.info("momentum breakout: lookback %d, amount %s", self.lookback, self.amount)

    def _book(self, symbol: str) -> dict[str, Any]:
        # kept in self.state, so a restart resumes with its window, position and pending order
        book: dict[str, Any] = self.state.get(symbol) or {}
        return {"closes": [], "position": "0", "pending": None, **book}

    async def on_candle(self, candle: Candle) -> None:
        book = self._book(candle.symbol)
        closes = [*book["closes"], str(candle.close)][-(self.lookback + 1) :]
        book["closes"] = closes
        self.state[candle.symbol] = book
        if book["pending"] and not await self._working(candle.symbol, book["pending"]):
            book["pending"] = None  # it ended while we were not looking (a restart, a race)
            self.state[candle.symbol] = book
        if len(closes) <= self.lookback or book["pending"]:
            return  # not enough history yet, or an order of ours is still working
        low, high = minmax(Decimal(c) for c in closes[:-1])
        position = Decimal(book["position"])
        if position == 0 and candle.close > high:
            await self._trade(candle.symbol, "buy", self.amount, f"close {candle.close} > {high}")
        elif position > 0 and candle.close < low:
            await self._trade(candle.symbol, "sell", position, f"close {candle.close} < {low}")

    async def _working(self, symbol: str, client_order_id: str) -> bool:
        orders = await self.venue.open_orders(symbol)
        return any(o.client_order_id == client_order_id for o in orders)

    async def _trade(self, symbol: str, side: str, amount: Decimal, why: str) -> None:
        self.log.info("%s %s %s: %s", side, amount, symbol, why)
        try:
            if side == "buy":
                order = await self.venue.buy(symbol, amount)
            else:
                order = await self.venue.sell(symbol, amount)
        except GatewayError as error:
            # the risk engine or the venue said no; nothing was booked, try on a later candle
            self.log.warning("%s %s refused: %s", side, symbol, error)
            return
        if order.status not in _DONE:
            self.state[symbol] = {**self._book(symbol), "pending": order.client_order_id}

    async def on_fill(self, fill: Fill) -> None:
        book = self._book(fill.symbol)
        signed = fill.amount if fill.side == "buy" else -fill.amount
        book["position"] = str(Decimal(book["position"]) + signed)
        self.state[fill.symbol] = book

    async def on_order_update(self, order: Order) -> None:
        book = self._book(order.symbol)
        if order.status in _DONE and book["pending"] == order.client_order_id:
            book["pending"] = None
            self.state[order.symbol] = book
