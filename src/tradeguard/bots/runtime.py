"""`BotRuntime`: one bot running end to end: its account behind the risk engine, its gateway,
its sandboxed process under supervision, and a candle feed driving all of it.

    runtime = BotRuntime(settings, db, audit, info, replay={"ETH/BTC": candles})
    await runtime.run(stop)        # until the replay ends, `stop` is set or a crash loop

`after_candle(symbol, candle)`, if given, is awaited after each replayed candle has gone
through the desk (paper fills, marks, breakers) and the bot has handled it (or its connection
ended): a display or a recorder reads `engine` (book, equity, breaker readings) and `venue` (the
paper account) there, while the bot waits for the next candle. It runs on the feed's task, so a
slow one slows the replay.

Paper connections trade on the paper venue (account `paper:<user>`); a replay runs on a
simulated clock and waits for the bot to handle each candle before the next (`ready`), so a
replay is as deterministic as a backtest. Status (process, restarts, resource usage, orders
answered) is written to `<bot dir>/status.json` every few seconds for `bots status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tradeguard.audit import AuditLog
from tradeguard.bots.manifest import Manifest
from tradeguard.bots.registry import BotInfo, BotPaths
from tradeguard.bots.supervisor import BotProcess, usage_of
from tradeguard.config import Settings
from tradeguard.core.clock import Clock, ManualClock
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import DomainEvent, EventName
from tradeguard.core.permissions import create_private_dir
from tradeguard.gateway.desk import BotIdentity, Desk
from tradeguard.gateway.server import BotGateway
from tradeguard.marketdata.candles import Candle
from tradeguard.marketdata.feeds import ReplayFeed
from tradeguard.risk.engine import Mode, RiskEngine
from tradeguard.risk.guard import GuardedVenue
from tradeguard.risk.limits import OperatorPolicy
from tradeguard.risk.states import Scope, TradingState
from tradeguard.risk.store import SqlRiskStore
from tradeguard.venues.paper.config import PaperConfig
from tradeguard.venues.paper.markets import market_from_candles
from tradeguard.venues.paper.venue import PaperVenue

__all__ = ["BotRuntime"]

log = logging.getLogger("tradeguard.bots")

STATUS_EVERY_S = 2.0
CONNECT_TIMEOUT_S = 60.0

AfterCandle = Callable[[str, Candle], Awaitable[None]]  # see the module docstring


def write_status(path: Path, status: Mapping[str, Any]) -> None:
    """Atomically: `bots status` never reads half a file."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(status, out, default=str)
    tmp.replace(path)


class BotRuntime:
    def __init__(
        self,
        settings: Settings,
        db: sa.Engine,
        audit: AuditLog,
        info: BotInfo,
        *,
        replay: Mapping[str, Sequence[Candle]],
        speed: float = 0.0,
        after_candle: AfterCandle | None = None,
    ) -> None:
        if info.connection != "paper":
            raise ConfigError(
                f"bot {info.name} trades on {info.connection}: `bots run` drives paper "
                "connections from replayed candles; live connections run under `tradeguard "
                "serve`"
            )
        self.settings = settings
        self.db = db
        self.audit = audit
        self.info = info
        self.paths: BotPaths = info.paths(settings)
        self.manifest: Manifest = info.manifest(settings)
        missing = set(self.manifest.symbols) - set(replay)
        if missing:
            raise ConfigError(f"no candles for {', '.join(sorted(missing))} to replay")
        self.replay = replay
        self.speed = speed
        self.after_candle = after_candle
        self.clock: Clock = ManualClock(_start_of(replay))
        self.account = f"paper:{info.user}"
        self.gateway: BotGateway | None = None
        self.process: BotProcess | None = None
        self.engine: RiskEngine | None = None
        self.venue: PaperVenue | None = None  # the paper account, once `run` has set it up
        self.crashes = 0  # non-zero exits of the bot's process during `run`

    # -- wiring --------------------------------------------------------------------------------

    async def _desk(self) -> tuple[Desk, GuardedVenue]:
        markets = {s: market_from_candles(s, c) for s, c in self.replay.items()}
        # A new paper account starts with the bot's capital in the quote currency it trades.
        quote = markets[self.manifest.symbols[0]].quote
        config = PaperConfig(starting_balances={quote: self.manifest.limits.capital})
        venue = PaperVenue(
            self.db, account=self.info.user, markets=markets, clock=self.clock, config=config
        )
        store = SqlRiskStore(self.db)
        engine = RiskEngine(
            clock=self.clock,
            events=self.audit,
            store=store,
            policy=OperatorPolicy.from_settings(self.settings),
        )
        engine.add_account(self.account, markets, await venue.fetch_balance())
        engine.register_bot(
            self.info.name,
            user=self.info.user,
            account=self.account,
            limits=self.manifest.limits,
            mode=Mode(self.info.mode),
        )
        self.engine = engine
        self.venue = venue
        guard = GuardedVenue(engine, venue, account=self.account, journal=store, audit=self.audit)
        desk = Desk(engine)
        desk.add_account(self.account, guard, venue="paper", key="paper***")
        return desk, guard

    def _identity(self) -> BotIdentity:
        m = self.manifest
        return BotIdentity(
            self.info.name,
            self.info.id,
            self.info.user,
            self.info.mode,
            m.symbols,
            m.timeframe,
            {self.info.connection: self.account},
            m.params,
        )

    def _emit(self, name: EventName, **details: str | int) -> None:
        details = {"bot": self.info.name, **details}
        self.audit.emit(DomainEvent(name, self.clock.now(), "system", self.info.id, details))

    def _on_crash(self, code: int, gave_up: bool) -> None:
        self.crashes += 1
        self._emit(EventName.BOT_CRASHED, exit=code)
        if gave_up and self.engine is not None:
            self._emit(EventName.BOT_CRASH_LOOP, crashes=self.settings.bot_crash_limit)
            self.engine.set_state(
                Scope.bot(self.info.name),
                TradingState.HALTED,
                actor="system",
                reason=f"crash loop: {self.settings.bot_crash_limit} crashes",
            )

    # -- running -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Run until the replay ends, `stop` is set or the bot gives up; the bot's last exit
        status (0 when it stopped cleanly)."""
        desk, guard = await self._desk()
        await guard.reconcile([self.info.name])  # before the bot may send anything
        if not self.paths.runtime.exists():
            create_private_dir(self.paths.runtime)
        gateway = BotGateway(
            self._identity(), desk, path=self.paths.socket, events=self.audit, simulated=True
        )
        self.gateway = gateway
        desk.add_bot(gateway.bot, gateway.deliver)
        await gateway.start()
        process = BotProcess(
            self.info, self.paths, self.settings, on_token=gateway.expect, on_crash=self._on_crash
        )
        self.process = process
        self._emit(EventName.BOT_STARTED, mode=self.info.mode)
        done = asyncio.Event()
        tasks = [
            asyncio.create_task(process.supervise(done)),
            asyncio.create_task(self._feed(desk, gateway, done)),
            asyncio.create_task(self._status(done)),
        ]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([tasks[0], tasks[1], stopper], return_when=asyncio.FIRST_COMPLETED)
        if not tasks[1].done():
            tasks[1].cancel()
        reason = "stopped" if stop.is_set() else "the replay ended"
        gateway.deliver({"event": "stop", "reason": reason})
        if not tasks[0].done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks[0]), 10)
        done.set()
        stopper.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await gateway.close()
        self._write_status("stopped")
        self._emit(EventName.BOT_STOPPED, exit=process.last_exit or 0)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        return process.last_exit or 0

    async def _feed(self, desk: Desk, gateway: BotGateway, done: asyncio.Event) -> None:
        timeframe = self.manifest.timeframe
        feed = ReplayFeed(self.replay, timeframe, clock=self.clock, speed=self.speed)
        async for symbol, candle in feed:
            if done.is_set():
                return
            if not gateway.connected.is_set():  # wait_for costs a task a candle; skip it
                await asyncio.wait_for(gateway.connected.wait(), CONNECT_TIMEOUT_S)
            await desk.on_candle(symbol, timeframe, candle)
            if symbol in self.manifest.symbols:
                at_ms = candle.ts_ms + feed.timeframe.ms
                await gateway.wait_ready(at_ms)
            if self.after_candle is not None:
                await self.after_candle(symbol, candle)

    async def _status(self, done: asyncio.Event) -> None:
        while not done.is_set():
            self._write_status("running")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), STATUS_EVERY_S)

    def _write_status(self, state: str) -> None:
        process, gateway, engine = self.process, self.gateway, self.engine
        usage = usage_of(gateway.peer_pid) if gateway and gateway.peer_pid else None
        status: dict[str, Any] = {
            "name": self.info.name,
            "id": self.info.id,
            "supervisor_pid": os.getpid(),
            "state": "crash loop" if process and process.gave_up else state,
            "pid": process.process.pid if process and process.process else None,
            "restarts": process.restarts if process else 0,
            "last_exit": process.last_exit if process else None,
            "requests": gateway.handled if gateway else 0,
            "connected": bool(gateway and gateway.connected.is_set()),
            "trading": engine.effective_state(self.info.name).value if engine else None,
            "rss_bytes": usage.rss_bytes if usage else None,
            "cpu_seconds": usage.cpu_seconds if usage else None,
            "clock": self.clock.now().isoformat(),
        }
        write_status(self.paths.root / "status.json", status)


def _start_of(replay: Mapping[str, Sequence[Candle]]) -> datetime:
    first = min(c[0].ts_ms for c in replay.values() if c)
    return datetime.fromtimestamp(first / 1000, UTC)
