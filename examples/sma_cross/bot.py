"""SMA crossover: long when the fast average of closes crosses above the slow one, flat when
it crosses back below. One position at a time, sized as a fixed fraction of the quote balance.

The rule, exactly (the backtest benchmark's peers use the same one):
- once there are `slow` closes, `above` = fast average > slow average;
- a cross is `above` differing from its value on the previous candle (the first full window
  only sets it);
- a cross to above while flat buys at the next candle's open (a market order); a cross to
  below while holding sells the whole position the same way.

The averages are compared through exact window sums (fast_sum * slow > slow_sum * fast): prices
sit on a tick grid, so the two averages are sometimes exactly equal, and float sums drifting by
one unit in the last place would invent or hide a cross there.

It runs the same in a backtest, on paper and live: every order goes through
`self.connection(...)`, and the risk engine may refuse it (the bot logs why and goes on). The
position it holds comes from the gateway's book, so a restart picks up where it was.
"""

from __future__ import annotations

from collections import deque
from decimal import ROUND_DOWN, Decimal

from tradeguard.sdk import Bot, Candle, Fill, OrderRejected


class SmaCross(Bot):
    async def on_start(self) -> None:
        self.fast = int(self.params.get("fast", 10))
        self.slow = int(self.params.get("slow", 30))
        if not 0 < self.fast < self.slow:
            raise ValueError(f"params: need 0 < fast < slow, got {self.fast} and {self.slow}")
        self.fraction = Decimal(str(self.params.get("fraction", "0.25")))
        self.closes: deque[Decimal] = deque()
        self.fast_sum = self.slow_sum = Decimal(0)
        self.was_above: bool | None = None
        self.trade = self.connection()
        positions = await self.trade.positions()
        self.held = sum((p.quantity for p in positions if p.symbol in self.symbols), Decimal(0))
        self.log.info("sma %d/%d on %s via %r", self.fast, self.slow, self.symbols, self.trade)

    async def on_candle(self, candle: Candle) -> None:
        closes = self.closes
        closes.append(candle.close)
        self.fast_sum += candle.close
        self.slow_sum += candle.close
        if len(closes) > self.fast:
            self.fast_sum -= closes[-self.fast - 1]
        if len(closes) > self.slow:
            self.slow_sum -= closes.popleft()
        if len(closes) < self.slow:
            return
        above = self.fast_sum * self.slow > self.slow_sum * self.fast
        crossed = self.was_above is not None and above != self.was_above
        self.was_above = above
        if crossed:
            await self._cross(candle, above)

    async def _cross(self, candle: Candle, above: bool) -> None:
        try:
            if above and self.held == 0:
                quote = candle.symbol.split("/")[1]
                free = (await self.trade.balance())[quote].free
                amount = (free * self.fraction / candle.close).quantize(
                    Decimal("0.0001"), rounding=ROUND_DOWN
                )
                if amount > 0:
                    await self.trade.buy(candle.symbol, amount)
            elif not above and self.held > 0:
                await self.trade.sell(candle.symbol, self.held)
        except OrderRejected as refused:
            self.log.warning("order refused: %s", refused)

    async def on_fill(self, fill: Fill) -> None:
        self.held += fill.amount if fill.side == "buy" else -fill.amount
        self.log.info("%s %s %s at %s", fill.side, fill.amount, fill.symbol, fill.price)
