"""The whole desk for the gateway tests, on real parts: a migrated SQLite store, an audit log
with keys generated here, a risk engine with user `alice` and her bots, a paper venue with the
ETH/BTC market and a funded account, a `GuardedVenue` with journal and audit, a `Desk`, and a
`BotGateway` per bot on a short socket path under /tmp.

The test process is "the bot": `is_bot_process` accepts the pids in `world.allowed_pids`
(ours by default), and the bot side is the real SDK (`GatewayClient`), or, for bytes the SDK
would never send, `RawBot`, which speaks the same wire format by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import struct
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.audit.conftest import new_keys
from tests.risk.conftest import migrated

from tradeguard.audit import AuditKeys, AuditLog, AuditOptions, tables
from tradeguard.bots.sdk import wire
from tradeguard.bots.sdk.client import GatewayClient
from tradeguard.core.clock import ManualClock
from tradeguard.gateway.desk import BotIdentity, Desk
from tradeguard.gateway.server import BotGateway
from tradeguard.marketdata import load_sample
from tradeguard.marketdata.candles import Candle
from tradeguard.risk import RiskEngine, SqlRiskStore
from tradeguard.risk.guard import GuardedVenue
from tradeguard.risk.limits import bot_limits_from
from tradeguard.secrets.secret import Secret
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles
from tradeguard.venues.types import Market, Order, OrderRequest

D = Decimal
SYMBOL = "ETH/BTC"
ACCOUNT = "paper:alice"
USER = "alice"
CANDLES = load_sample("ETH_BTC-5m.csv").candles[:5]
FIRST = CANDLES[0]
MARK = FIRST.close  # 0.0994766 BTC
STARTING_BTC = D(10)
FAR_BELOW = D("0.07")  # a buy limit here rests (30% under the mark, inside the 50% band)

# `bot.toml [risk]` tables, read by the same parser the supervisor uses.
LIMITS: dict[str, Any] = {
    "capital": "10",
    "symbols": [SYMBOL],
    "max_order_notional": "0.5",  # BTC: about 5 ETH at the mark
    "max_position_notional": "5",
    "max_gross_exposure": "5",
    "max_open_orders": 1000,
    "max_submits_per_minute": 10_000,
    "price_band_pct": 50,
    "blocked_zones": [],
}


def identity(name: str, **connections: str) -> BotIdentity:
    return BotIdentity(
        name=name,
        id=str(uuid.uuid4()),
        user=USER,
        mode="paper",
        symbols=(SYMBOL,),
        timeframe="5m",
        connections=connections or {"paper": ACCOUNT},
    )


ALPHA = identity("alpha")
BETA = identity("beta", paper=ACCOUNT, **{"beta-only": ACCOUNT})


def candle(ts_ms: int, open_: str, high: str, low: str, close: str) -> Candle:
    return Candle(ts_ms, D(open_), D(high), D(low), D(close), D(100))


def next_ts(step: int) -> int:
    """The open time of the `step`-th 5-minute bar after the first sample candle."""
    return FIRST.ts_ms + step * 5 * 60 * 1000


class ObservedPaperVenue(PaperVenue):
    """The real paper venue, which also notes, as each order arrives, whether the audit log
    already holds that order's `order.intent` (its seq, or None)."""

    intent_seq_on_arrival: dict[str, int | None]

    async def create_order(self, request: OrderRequest) -> Order:
        cid = request.client_order_id
        self.intent_seq_on_arrival[cid] = intent_seq(self.engine, cid)
        return await super().create_order(request)


def intent_seq(db: sa.Engine, client_order_id: str) -> int | None:
    entries = tables.entries
    with db.connect() as conn:
        return conn.execute(
            sa.select(entries.c.seq).where(
                entries.c.event == "order.intent", entries.c.subject == client_order_id
            )
        ).scalar()


class RawBot:
    """A bot end that writes whatever bytes it is told to, framed or not, and reads replies in
    order (the SDK drops replies it cannot match to a request; these tests want them all)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(wire.encode(message))

    def send_body(self, body: bytes) -> None:
        self.writer.write(struct.pack(">I", len(body)) + body)

    async def reply(self) -> dict[str, Any] | None:
        """The next frame, or None when the gateway closed the connection."""
        try:
            body = await wire.read_frame(self.reader)
        except (wire.FrameError, OSError):
            return None
        return None if body is None else wire.decode(body)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class World:
    data: Path
    run_dir: Path
    db: sa.Engine
    keys: AuditKeys
    clock: ManualClock
    markets: dict[str, Market]
    audit: AuditLog = field(init=False)
    engine: RiskEngine = field(init=False)
    venue: ObservedPaperVenue = field(init=False)
    guard: GuardedVenue = field(init=False)
    desk: Desk = field(init=False)
    bots: dict[str, BotIdentity] = field(default_factory=dict)
    tokens: dict[str, Secret] = field(default_factory=dict)
    allowed_pids: set[int] = field(default_factory=lambda: {os.getpid()})
    btc: Decimal = STARTING_BTC  # what the paper account starts with

    def boot(self, bots: dict[str, dict[str, Any]]) -> None:
        """Build (or, on the same database, rebuild as after a restart) every in-process part:
        audit log, engine, venue, guard, desk; register `bots` (name -> limits table)."""
        self.audit = AuditLog(
            self.db, self.keys, clock=self.clock, options=AuditOptions(window=0.0)
        )
        journal = SqlRiskStore(self.db)
        self.engine = RiskEngine(clock=self.clock, events=self.audit, store=journal)
        self.venue = ObservedPaperVenue(
            self.db,
            account="alice",
            markets=self.markets,
            clock=self.clock,
            config=PaperConfig(starting_balances={"BTC": self.btc}),
        )
        self.venue.intent_seq_on_arrival = {}
        balance = asyncio.run(self.venue.fetch_balance())
        self.engine.add_account(ACCOUNT, self.markets, balance)
        for name, raw in bots.items():
            limits = bot_limits_from(raw)
            self.engine.register_bot(name, user=USER, account=ACCOUNT, limits=limits)
        self.engine.on_price(ACCOUNT, SYMBOL, MARK)
        self.guard = GuardedVenue(
            self.engine, self.venue, account=ACCOUNT, journal=journal, audit=self.audit
        )
        self.desk = Desk(self.engine)
        self.desk.add_account(ACCOUNT, self.guard, venue="paper", key="pape***")

    def shutdown(self) -> None:
        self.audit.close()

    def gateway(self, bot: BotIdentity) -> BotGateway:
        self.bots[bot.name] = bot
        token = self.tokens.setdefault(bot.name, Secret(secrets.token_hex(32)))
        return BotGateway(
            bot,
            self.desk,
            path=self.run_dir / f"{bot.name}.sock",
            token=token,
            is_bot_process=lambda pid: pid in self.allowed_pids,
            events=self.audit,
        )

    @contextlib.asynccontextmanager
    async def serving(self, *bots: BotIdentity) -> AsyncIterator[list[BotGateway]]:
        """Each bot's gateway listening and on the desk (events reach its socket)."""
        gateways = [self.gateway(bot) for bot in bots]
        for gateway in gateways:
            self.desk.add_bot(gateway.bot, gateway.deliver)
            await gateway.start()
        try:
            yield gateways
        finally:
            for gateway in gateways:
                await gateway.close()
                self.desk.remove_bot(gateway.bot.name)

    def socket(self, bot: BotIdentity) -> str:
        return str(self.run_dir / f"{bot.name}.sock")

    def token(self, bot: BotIdentity) -> str:
        with self.tokens[bot.name].reveal_text() as text:
            return text

    async def connect(
        self, bot: BotIdentity, token: str | None = None
    ) -> tuple[GatewayClient, dict[str, Any]]:
        return await GatewayClient.connect(self.socket(bot), token or self.token(bot))

    async def raw(self, bot: BotIdentity, *, hello: bool = True) -> RawBot:
        reader, writer = await asyncio.open_unix_connection(self.socket(bot))
        raw = RawBot(reader, writer)
        if hello:
            raw.send({"id": 0, "op": "hello", "token": self.token(bot), "protocol": 1})
            answer = await raw.reply()
            assert answer is not None
            assert answer["ok"] is True
        return raw

    def audited(self, event: str) -> list[sa.Row[Any]]:
        entries = tables.entries
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    sa.select(entries.c.seq, entries.c.subject, entries.c.details)
                    .where(entries.c.event == event)
                    .order_by(entries.c.seq)
                )
            )

    def venue_orders(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM paper_orders")).scalar_one())

    def ledger_fills(self, client_order_id: str) -> int:
        with self.db.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM risk_fills WHERE client_order_id = :cid"),
                    {"cid": client_order_id},
                ).scalar_one()
            )


@contextlib.contextmanager
def _short_run_dir() -> Iterator[Path]:
    # A Unix socket path must stay under 108 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="tg-gw-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


WorldFactory = Callable[..., World]


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[WorldFactory]:
    """`make_world(alpha=LIMITS, beta=...)`: a desk with those bots (name -> limits table),
    the first sample candle already seen by the venue and the engine; `btc` funds the paper
    account."""
    built: list[World] = []
    with _short_run_dir() as run_dir:

        def build(btc: Decimal = STARTING_BTC, **bots: dict[str, Any]) -> World:
            data = tmp_path / f"data{len(built)}"
            clock = ManualClock(FIRST.at + timedelta(minutes=5))
            markets = {SYMBOL: market_from_candles(SYMBOL, CANDLES)}
            world = World(data, run_dir, migrated(data), new_keys(), clock, markets, btc=btc)
            world.boot(bots or {"alpha": LIMITS})
            asyncio.run(world.venue.on_candle(SYMBOL, FIRST))
            world.engine.on_close(ACCOUNT, SYMBOL, FIRST.close)
            built.append(world)
            return world

        try:
            yield build
        finally:
            for world in built:
                world.shutdown()
                world.db.dispose()


@pytest.fixture
def world(make_world: WorldFactory) -> World:
    """The desk with one bot, `alpha`."""
    return make_world()


@pytest.fixture
def two_bots(make_world: WorldFactory) -> World:
    """The desk with two bots of the same user on the same paper account: `alpha` and `beta`
    (beta may also use the connection name `beta-only`)."""
    return make_world(alpha=LIMITS, beta=LIMITS)
