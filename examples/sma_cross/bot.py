"""SMA crossover: long when the fast average of closes crosses above the slow one, flat when
it crosses back below. One position at a time, sized as a fixed fraction of the quote balance.

It runs the same in a backtest, on paper and live: every order goes through
`self.connection(...)`, and the risk engine may refuse it (the bot logs why and goes on).
"""

from __future__ import annotations

from collections import deque
from decimal import ROUND_DOWN, Decimal

from tradeguard.sdk import Bot, Candle, Fill, OrderRejected


class SmaCross(Bot):
    async def on_start(self) -> None:
        self.fast = int(self.params.get("fast", 10))
        self.slow = int(self.params.get("slow", 30))
        self.fraction = Decimal(str(self.params.get("fraction", "0.25")))
        self.closes: deque[Decimal] = deque(maxlen=self.slow)
        self.trade = self.connection()
        self.was_above: bool | None = None
        self.log.info("sma %d/%d on %s via %r", self.fast, self.slow, self.symbols, self.trade)

    def _average(self, n: int) -> Decimal:
        window = list(self.closes)[-n:]
        return sum(window, Decimal(0)) / len(window)

    async def on_candle(self, candle: Candle) -> None:
        self.closes.append(candle.close)
        if len(self.closes) < self.slow:
            return
        above = self._average(self.fast) > self._average(self.slow)
        crossed = self.was_above is not None and above != self.was_above
        self.was_above = above
        if not crossed:
            return
        held = Decimal(str(self.state.get("held", "0")))
        try:
            if above and held == 0:
                quote = candle.symbol.split("/")[1]
                free = (await self.trade.balance())[quote].free
                amount = (free * self.fraction / candle.close).quantize(
                    Decimal("0.0001"), rounding=ROUND_DOWN
                )
                if amount > 0:
                    await self.trade.buy(candle.symbol, amount)
            elif not above and held > 0:
                await self.trade.sell(candle.symbol, held)
        except OrderRejected as refused:
            self.log.warning("order refused: %s", refused)

    async def on_fill(self, fill: Fill) -> None:
        held = Decimal(str(self.state.get("held", "0")))
        held += fill.amount if fill.side == "buy" else -fill.amount
        self.state["held"] = str(held)
        self.state["fills"] = int(self.state.get("fills", 0)) + 1
        self.log.info("%s %s %s at %s", fill.side, fill.amount, fill.symbol, fill.price)
