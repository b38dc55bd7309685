"""The caller's bots: list, show, start, stop, read the log's tail.

Start and stop run the same code as `tradeguard bots start|stop` (tradeguard.bots.control): a
start spawns the bot's supervisor detached, replaying bundled candles on the paper venue. That
is all tradeguard can run today, so it is all this offers: a bot on a live connection is
refused (409) with a message saying so, and no server path can be named as a replay (only a
bundled sample, by name). Creating a bot is not offered here: it copies a folder on the
server, and a request must not name server paths; `tradeguard bots create` does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field, StringConstraints

from tradeguard.bots import control
from tradeguard.bots.registry import BotInfo, list_bots
from tradeguard.core.errors import ConfigError, Conflict
from tradeguard.marketdata.sample import list_samples
from tradeguard.risk.control import effective_state
from tradeguard.risk.states import Scope, TradingState
from tradeguard.risk.store import BotRecord, SqlRiskStore, StoredState
from tradeguard.secrets.patterns import redact_text
from tradeguard.web.context import AppContext
from tradeguard.web.deps import ClientIp, Ctx, CurrentUser, Trader
from tradeguard.web.errors import responses
from tradeguard.web.routers.common import BotId, bot_of
from tradeguard.web.schemas import Body

__all__ = ["router"]

router = APIRouter(prefix="/api/bots", tags=["bots"])

MAX_LOG_LINES = 1000
MAX_LINE = 2000  # characters of one log line in a response


class BotStatusOut(BaseModel):
    """The supervisor's last report (status.json), written every few seconds while it runs."""

    state: str = Field(description="never run, starting, running, stopped, crash loop, dead ...")
    pid: int | None = Field(default=None, description="The bot process (not the supervisor)")
    restarts: int | None = None
    last_exit: int | None = None
    connected: bool | None = None
    requests: int | None = Field(default=None, description="Gateway requests answered")
    rss_bytes: int | None = None
    cpu_seconds: float | None = None


class BotOut(BaseModel):
    id: str
    name: str
    connection: str = Field(description="paper, or the name of one of your credentials")
    mode: str = Field(description="paper or live (after promotion)")
    created_at: datetime
    trading: TradingState = Field(description="The strictest of global, user and bot states")
    promoted_at: datetime | None
    equity: Decimal | None = Field(description="The risk engine's last equity of the bot")
    status: BotStatusOut


class StartBody(Body):
    replay: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        min_length=1,
        max_length=8,
        description="Bundled candle files to replay, by name (GET /api/bots/samples), one per "
        "symbol the bot trades",
    )
    speed: float = Field(
        default=0.0, ge=0, le=1_000_000, description="0: as fast as the bot keeps up; 60: 1 h/min"
    )


class LogOut(BaseModel):
    lines: list[str] = Field(description="The newest lines, oldest first (redacted)")


def _int(status: dict[str, Any], key: str) -> int | None:
    value = status.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _status_out(status: dict[str, Any]) -> BotStatusOut:
    cpu = status.get("cpu_seconds")
    cpu = float(cpu) if isinstance(cpu, int | float) and not isinstance(cpu, bool) else None
    connected = status.get("connected")
    return BotStatusOut(
        state=str(status.get("state", "unknown"))[:64],
        pid=_int(status, "pid"),
        restarts=_int(status, "restarts"),
        last_exit=_int(status, "last_exit"),
        connected=connected if isinstance(connected, bool) else None,
        requests=_int(status, "requests"),
        rss_bytes=_int(status, "rss_bytes"),
        cpu_seconds=float(cpu)
        if isinstance(cpu, int | float) and not isinstance(cpu, bool)
        else None,
    )


@dataclass(frozen=True)
class _RiskView:
    """The risk engine's states and bot records, read once for a response."""

    states: dict[Scope, StoredState]
    records: dict[str, BotRecord]

    @classmethod
    def read(cls, ctx: AppContext) -> _RiskView:
        store = SqlRiskStore(ctx.engine)
        return cls(store.states(), {r.name: r for r in store.bots()})


def bot_out(ctx: AppContext, info: BotInfo, risk: _RiskView) -> BotOut:
    record = risk.records.get(info.name)
    if record is not None and record.user != info.user:
        record = None  # a namesake's risk record is not this bot's
    return BotOut(
        id=info.id,
        name=info.name,
        connection=info.connection,
        mode=record.mode if record else info.mode,
        created_at=info.created_at,
        trading=effective_state(risk.states, info.user, info.name),
        promoted_at=record.promoted_at if record else None,
        equity=record.meters.equity if record else None,
        status=_status_out(control.read_status(ctx.settings, info)),
    )


def _one(ctx: AppContext, info: BotInfo) -> BotOut:
    return bot_out(ctx, info, _RiskView.read(ctx))


@router.get("", response_model=list[BotOut], responses=responses(401, 429))
def list_own_bots(principal: CurrentUser, ctx: Ctx) -> list[BotOut]:
    """The caller's bots, by name."""
    risk = _RiskView.read(ctx)
    return [bot_out(ctx, b, risk) for b in list_bots(ctx.engine, principal.account.name)]


@router.get("/samples", response_model=list[str], responses=responses(401, 429))
def list_replay_samples(_principal: CurrentUser) -> list[str]:
    """The bundled candle files a start can replay."""
    return list_samples()


@router.get("/{bot_id}", response_model=BotOut, responses=responses(401, 404, 422, 429))
def get_bot(bot_id: BotId, principal: CurrentUser, ctx: Ctx) -> BotOut:
    return _one(ctx, bot_of(ctx, principal, bot_id))


@router.post(
    "/{bot_id}/start",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BotOut,
    responses=responses(400, 401, 403, 404, 409, 422, 429),
)
def start_bot(body: StartBody, bot_id: BotId, principal: Trader, ctx: Ctx, ip: ClientIp) -> BotOut:
    """Start the bot's supervisor, replaying the named bundled candles on the paper venue; it
    reports `starting`, then `running` (GET the bot). A bot on a live connection, or one
    running already, is refused (409)."""
    info = bot_of(ctx, principal, bot_id)
    samples = set(list_samples())
    if not samples.issuperset(body.replay):
        raise ConfigError(
            "a replay names bundled candle files only (no paths); GET /api/bots/samples lists them"
        )
    replay = [f"{control.SAMPLE}{name}" for name in body.replay]
    try:
        control.start(
            ctx.settings, info, replay, body.speed, events=ctx.audit, actor=principal.actor,
            ip=ip,
        )  # fmt: skip
    except control.BotConflict as error:
        raise Conflict(error.message) from None
    return _one(ctx, info)


@router.post(
    "/{bot_id}/stop", response_model=BotOut, responses=responses(401, 403, 404, 409, 422, 429)
)
def stop_bot(bot_id: BotId, principal: Trader, ctx: Ctx, ip: ClientIp) -> BotOut:
    """Stop the bot (SIGTERM: its on_stop runs); waits up to 15 s for it to end. Stopping a
    bot that is not running changes nothing."""
    info = bot_of(ctx, principal, bot_id)
    try:
        control.stop(ctx.settings, info, events=ctx.audit, actor=principal.actor, ip=ip)
    except control.BotConflict as error:
        raise Conflict(error.message) from None
    return _one(ctx, info)


@router.get("/{bot_id}/logs", response_model=LogOut, responses=responses(401, 404, 422, 429))
def get_bot_logs(
    bot_id: BotId,
    principal: CurrentUser,
    ctx: Ctx,
    lines: Annotated[int, Query(ge=1, le=MAX_LOG_LINES)] = 100,
) -> LogOut:
    """The newest lines of the bot's log. The supervisor redacts lines as it writes them;
    they are redacted again here (the second line of defence) and cut at 2,000 characters."""
    info = bot_of(ctx, principal, bot_id)
    tail = control.tail_log(info.paths(ctx.settings).logs / "bot.log", lines)
    return LogOut(lines=[redact_text(line[:MAX_LINE]) for line in tail])
