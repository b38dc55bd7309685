"""`Backtest`: one bot class over stored candles, on a simulated clock, through the same order
path a paper bot takes, in one process.

    spec = BacktestSpec(name="sma", symbol="ETH/BTC", timeframe=Timeframe.parse("5m"),
                        params={"fast": 10}, limits=BotLimits(capital=Decimal(1)))
    result = await Backtest(SmaCross, spec, state_dir=tmp).run(candles)

What is the same as paper and live trading: the SDK the bot sees (`Bot`, `Connection`, event
delivery), the gateway's request check (`parse_request`, after a JSON round trip as on the
socket) and its desk, the risk engine with the bot's limits and breakers, the guarded venue and
the paper venue's fill rules. What differs: the venue keeps its state in memory, the desk is
called in-process instead of over the socket, client order ids count up (the same run gives
the same ids), and nothing is journaled or audited (a backtest moves no money).

For each candle, in order: the clock moves to the candle's close; the venue fills the orders
the candle reaches (their fill and order events reach the bot); marks, volatility zones and
breakers move; the bot's `on_candle` runs; the bot's equity is recorded. So an order placed in
`on_candle` fills at the next candle's open at the earliest, as on paper.

An exception in a bot callback stops the run: the result holds everything up to that candle and
the scrubbed traceback.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeguard.backtest.record import Recorder
from tradeguard.bots.sdk import wire
from tradeguard.bots.sdk.bot import Bot
from tradeguard.bots.sdk.runner import call, deliver, load_bot_class
from tradeguard.bots.sdk.types import Candle as BotCandle
from tradeguard.bots.sdk.types import GatewayError, OrderRejected
from tradeguard.core.clock import EventClock
from tradeguard.core.events import DomainEvent, EventName
from tradeguard.gateway.desk import BotIdentity, Desk, refusal
from tradeguard.gateway.messages import BadRequest, parse_request
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.risk.engine import Mode, RiskEngine
from tradeguard.risk.guard import GuardedVenue
from tradeguard.risk.limits import BotLimits, UserLimits
from tradeguard.risk.zones import ZoneConfig
from tradeguard.secrets.tracebacks import format_exception
from tradeguard.venues.paper.config import PaperConfig
from tradeguard.venues.paper.markets import market_from_candles
from tradeguard.venues.paper.venue import PaperVenue

__all__ = ["Backtest", "BacktestSpec", "Progress", "run_backtest"]

Progress = Callable[[int, int], None]  # (candles done, candles in all)
PROGRESS_EVERY = 10_000
_ACCOUNT = "backtest"
_USER = "backtest"


@dataclass(frozen=True)
class BacktestSpec:
    """What to run. `limits.capital` is the starting balance, in the quote currency; `paper`
    the fees and slippage (its starting balances are replaced by the capital)."""

    name: str
    symbol: str
    timeframe: Timeframe
    limits: BotLimits
    params: Mapping[str, Any] = field(default_factory=dict)
    paper: PaperConfig = field(default_factory=PaperConfig)
    user_limits: UserLimits = field(default_factory=UserLimits)
    zones: ZoneConfig | None = None


class _RiskEvents:
    """The risk engine's events: breaker trips and warnings go into the result."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def emit(self, event: DomainEvent) -> None:
        if event.name in (EventName.RISK_BREAKER_TRIPPED, EventName.RISK_BREAKER_WARNING):
            self._recorder.risk_event(event)


class _LocalGateway:
    """The bot's `Requester`: each request crosses JSON as it would the socket, is checked by
    the gateway's own parser and handled by the desk; refusals come back as the SDK's errors."""

    def __init__(self, desk: Desk, bot: BotIdentity, recorder: Recorder) -> None:
        self._desk = desk
        self._bot = bot
        self._recorder = recorder
        self._ids = itertools.count(1)

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        frame = wire.encode({"id": next(self._ids), "op": op, **args})
        request = parse_request(wire.decode(frame[wire.HEADER_SIZE :]))
        if isinstance(request, BadRequest):
            raise GatewayError("bad_request", request.message)
        try:
            reply = await self._desk.handle(self._bot, request)
        except Exception as error:
            code, message = refusal(error)
            if code == "internal":
                raise  # our bug, not the bot's: the backtest stops with it
            if op == "order":
                self._recorder.refused(code, message)
                raise OrderRejected(code, message) from None
            raise GatewayError(code, message) from None
        return {"id": 0, "ok": True, **reply}


class Backtest:
    def __init__(
        self,
        bot_class: type[Bot],
        spec: BacktestSpec,
        *,
        state_dir: Path,
        progress: Progress | None = None,
    ) -> None:
        self.bot_class = bot_class
        self.spec = spec
        self.state_dir = state_dir
        self.progress = progress

    def _identity(self) -> BotIdentity:
        s = self.spec
        return BotIdentity(
            s.name,
            "backtest",
            _USER,
            "paper",
            (s.symbol,),
            s.timeframe.text,
            {"paper": _ACCOUNT},
            dict(s.params),
        )

    async def _desk(
        self, candles: Sequence[Candle], clock: EventClock, recorder: Recorder
    ) -> tuple[Desk, RiskEngine]:
        spec = self.spec
        market = market_from_candles(spec.symbol, candles)
        config = PaperConfig(
            maker_fee_bps=spec.paper.maker_fee_bps,
            taker_fee_bps=spec.paper.taker_fee_bps,
            slippage_bps=spec.paper.slippage_bps,
            starting_balances={market.quote: spec.limits.capital},
        )
        venue = PaperVenue.in_memory(
            account=_ACCOUNT,
            markets={spec.symbol: market},
            config=config,
            clock=clock,
            timeframe=spec.timeframe,
        )
        engine = RiskEngine(clock=clock, events=_RiskEvents(recorder), zones=spec.zones)
        engine.add_account(_ACCOUNT, {spec.symbol: market}, await venue.fetch_balance())
        engine.set_user_limits(_USER, spec.user_limits)
        engine.register_bot(
            spec.name, user=_USER, account=_ACCOUNT, limits=spec.limits, mode=Mode.PAPER
        )
        engine.on_closed = recorder.closed
        guard = GuardedVenue(engine, venue, account=_ACCOUNT)
        ids = (f"0x{n:032x}" for n in itertools.count(1))
        desk = Desk(engine, client_ids=ids.__next__)
        desk.add_account(_ACCOUNT, guard, venue="paper", key="paper***")
        return desk, engine

    async def run(self, candles: Sequence[Candle]) -> Recorder:
        """Run the bot over `candles` (one market, oldest first, checked: see
        `marketdata.files.read_candles`); the recorder holds the trades, equity and errors."""
        if not candles:
            raise ValueError("a backtest needs at least one candle")
        spec = self.spec
        tf_ms = spec.timeframe.ms
        clock = EventClock(candles[0].ts_ms)
        recorder = Recorder(spec.limits.capital)
        desk, engine = await self._desk(candles, clock, recorder)
        identity = self._identity()
        events: list[dict[str, Any]] = []
        desk.add_bot(identity, events.append)
        bot = self.bot_class()
        hello = desk.hello(identity, simulated=True)
        bot._attach(hello, _LocalGateway(desk, identity, recorder), self.state_dir)
        try:
            await call(bot.on_start)
            await self._loop(bot, desk, engine, candles, tf_ms, clock, recorder, events)
        except Exception as error:  # noqa: BLE001 - whatever the bot raises ends the run, recorded
            recorder.fail(format_exception(error))
        try:
            await call(bot.on_stop)
        except Exception as error:  # noqa: BLE001 - as above
            if recorder.error is None:
                recorder.fail(format_exception(error))
        recorder.finish(engine.book(spec.name), engine.effective_state(spec.name).value)
        return recorder

    async def _loop(
        self,
        bot: Bot,
        desk: Desk,
        engine: RiskEngine,
        candles: Sequence[Candle],
        tf_ms: int,
        clock: EventClock,
        recorder: Recorder,
        events: list[dict[str, Any]],
    ) -> None:
        symbol, tf_text, name = self.spec.symbol, self.spec.timeframe.text, self.spec.name
        settle, on_candle, equity = desk.settle, bot.on_candle, engine.equity
        advance, record = bot.clock._advance, recorder.bar
        total, progress = len(candles), self.progress
        for index, candle in enumerate(candles):
            close_ms = candle.ts_ms + tf_ms
            clock.set_ms(close_ms)
            advance(close_ms)
            recorder.index = index
            await settle(symbol, candle)
            if events:
                await _drain(bot, events, recorder)
            seen = BotCandle(
                symbol,
                tf_text,
                candle.ts_ms,
                candle.open,
                candle.high,
                candle.low,
                candle.close,
                candle.volume,
            )
            await call(on_candle, seen)
            if events:
                await _drain(bot, events, recorder)
            record(close_ms, equity(name))
            if progress is not None and index % PROGRESS_EVERY == 0:
                progress(index, total)
        if progress is not None:
            progress(total, total)


def run_backtest(
    bot_dir: Path,
    candles: Sequence[Candle],
    *,
    symbol: str,
    timeframe: str,
    limits: BotLimits,
    params: Mapping[str, Any] | None = None,
    paper: PaperConfig | None = None,
    user_limits: UserLimits | None = None,
    state_dir: Path,
    progress: Progress | None = None,
) -> Recorder:
    """Load the one `Bot` subclass in `bot_dir/bot.py` and run it in this process (no
    sandbox: for code you trust, e.g. a benchmark; `tradeguard backtest` sandboxes it)."""
    spec = BacktestSpec(
        name=bot_dir.name,
        symbol=symbol,
        timeframe=Timeframe.parse(timeframe),
        limits=limits,
        params=dict(params or {}),
        paper=paper or PaperConfig(),
        user_limits=user_limits or UserLimits(),
    )
    bot_class = load_bot_class(bot_dir)
    return asyncio.run(
        Backtest(bot_class, spec, state_dir=state_dir, progress=progress).run(candles)
    )


async def _drain(bot: Bot, events: list[dict[str, Any]], recorder: Recorder) -> None:
    """The events the desk delivered (fills, order updates), to the recorder and the bot."""
    while events:
        event = events.pop(0)
        recorder.event(event)
        await deliver(bot, event)
