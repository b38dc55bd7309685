"""Trading states, the emergency halt, the reset, and promotion to live trading.

The same code as `tradeguard risk halt|reset` and `tradeguard bots promote`
(tradeguard.risk.control), with the caller's rights on top:

- scope `user` is the caller's own user, `bot` one of the caller's bots (by id); `all` (the
  whole platform) is for admins only;
- a halt never loosens a scope and never takes over who set it;
- a reset needs a step-up, and a trader may reset only what they or the system (a breaker, a
  crash loop) halted: a halt an administrator or operator set is theirs to lift;
- a promotion needs a step-up; overriding the gate (the operator's thresholds) is for admins.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Literal, Self

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from tradeguard.auth.accounts import Role
from tradeguard.auth.service import Principal
from tradeguard.core.errors import ConfigError, Conflict, Forbidden
from tradeguard.risk import GLOBAL, OperatorPolicy, Scope, SqlRiskStore, TradingState
from tradeguard.risk.control import (
    MAX_REASON,
    RiskControl,
    UnknownRiskBot,
    breakers_of,
    effective_state,
    venue_opener,
)
from tradeguard.risk.ledger import owned_bots
from tradeguard.risk.store import StoredState
from tradeguard.web.context import AppContext
from tradeguard.web.deps import ClientIp, Ctx, CurrentUser, Trader
from tradeguard.web.errors import responses
from tradeguard.web.routers.common import UUID_PATTERN, BotId, bot_of, step_up
from tradeguard.web.schemas import Body, StepUpFields

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["risk"])

SYSTEM = "system"  # the actor of breaker trips and crash loops
MAX_TRIPS = 20

ScopeKindIn = Literal["all", "user", "bot"]
Reason = Field(min_length=1, max_length=MAX_REASON, description="Why; it goes to the audit log")


# -- models --------------------------------------------------------------------------------------


class ScopeFields(Body):
    scope: ScopeKindIn = Field(description="all (admins), user (yours) or bot (one of yours)")
    bot: str | None = Field(
        default=None, min_length=36, max_length=36, pattern=UUID_PATTERN,
        description="The bot's id, with scope bot only",
    )  # fmt: skip

    @model_validator(mode="after")
    def _bot_with_bot_scope(self) -> Self:
        if (self.scope == "bot") != (self.bot is not None):
            raise ValueError("give `bot` (a bot id) with scope bot, and only then")
        return self


class HaltBody(ScopeFields):
    reason: str = Reason
    reducing: bool = Field(default=False, description="REDUCING instead of HALTED: exits pass")


class ResetBody(ScopeFields, StepUpFields):
    reason: str = Reason


class PromoteBody(StepUpFields):
    override: bool = Field(default=False, description="Promote although the record falls short")
    reason: str | None = Field(default=None, max_length=MAX_REASON, description="Needed with it")


class StateOut(BaseModel):
    scope: str
    state: TradingState
    since: datetime
    actor: str = Field(description="Who set it: user:<id>, operator (the CLI) or system")
    reason: str


class ReadingOut(BaseModel):
    breaker: str
    value: Decimal
    limit: Decimal
    tripped: bool


class BotRiskOut(BaseModel):
    bot: str
    mode: str
    state: TradingState = Field(description="The strictest of global, user and bot states")
    equity: Decimal
    breakers: list[ReadingOut]


class TripOut(BaseModel):
    scope: str
    breaker: str
    value: Decimal
    limit: Decimal
    tripped_at: datetime
    reset_at: datetime | None
    reset_by: str | None
    reset_reason: str | None


class RiskStatusOut(BaseModel):
    states: list[StateOut] = Field(description="Scopes that are not ACTIVE")
    bots: list[BotRiskOut]
    trips: list[TripOut] = Field(description="The last breaker trips, newest first")


class CancelOut(BaseModel):
    bot: str
    account: str
    symbol: str
    client_order_id: str
    result: str = Field(description="canceled, already closed, not at the venue, FAILED: ...")


class HaltOut(BaseModel):
    scope: str
    state: TradingState
    changed: bool = Field(description="False: the scope was this strict already")
    canceled: list[CancelOut]
    failed: int = Field(description="Orders that could not be canceled: cancel them by hand")


class ResetOut(BaseModel):
    scope: str
    state: TradingState
    previous: TradingState


class RecordOut(BaseModel):
    trades: int
    win_rate_pct: Decimal | None
    profit_factor: Decimal | None
    max_drawdown_pct: Decimal
    net: Decimal


class ThresholdsOut(BaseModel):
    min_trades: int
    min_win_rate_pct: Decimal
    min_profit_factor: Decimal
    max_drawdown_pct: Decimal


class PromotionOut(BaseModel):
    bot: str
    promoted: bool = Field(description="The bot may trade live (now or from before)")
    promoted_at: datetime | None
    reason: str | None
    record: RecordOut | None = Field(description="None: it was promoted before")
    thresholds: ThresholdsOut
    failures: list[str] = Field(description="Each unmet threshold")


# -- helpers -------------------------------------------------------------------------------------


def _is_admin(principal: Principal) -> bool:
    return principal.account.role is Role.ADMIN


def _scope_of(ctx: AppContext, principal: Principal, body: ScopeFields) -> Scope:
    if body.scope == "all":
        if not _is_admin(principal):
            raise Forbidden("scope all (every user's bots) is for admins; use scope user or bot")
        return GLOBAL
    if body.scope == "user":
        return Scope.user(principal.account.name)
    assert body.bot is not None  # noqa: S101 - the model checked it
    return Scope.bot(bot_of(ctx, principal, body.bot).name)


def _control(ctx: AppContext, principal: Principal, ip: str) -> RiskControl:
    opener = venue_opener(ctx.engine, ctx.settings, lambda: ctx.vault)
    return RiskControl(SqlRiskStore(ctx.engine), ctx.audit, opener, actor=principal.actor, ip=ip)


def _visible(principal: Principal, bots: set[str]) -> set[Scope]:
    """The scopes a caller may see: their user's, their bots' and (admins) the global one."""
    scopes = {Scope.user(principal.account.name), *(Scope.bot(b) for b in bots)}
    return scopes | {GLOBAL} if _is_admin(principal) else scopes


def _state_out(scope: Scope, s: StoredState) -> StateOut:
    return StateOut(
        scope=str(scope), state=s.state, since=s.changed_at, actor=s.actor, reason=s.reason
    )


# -- routes --------------------------------------------------------------------------------------


@router.get("/risk/status", response_model=RiskStatusOut, responses=responses(401, 429))
def risk_status(principal: CurrentUser, ctx: Ctx) -> RiskStatusOut:
    """The caller's trading states, their bots' breakers against their limits, and the last
    trips of their scopes (admins also see the global scope)."""
    store = SqlRiskStore(ctx.engine)
    with ctx.engine.connect() as conn:
        mine = owned_bots(conn, principal.account.name)
    visible = _visible(principal, mine)
    states = store.states()
    bots = [
        BotRiskOut(
            bot=r.name,
            mode=r.mode,
            state=effective_state(states, r.user, r.name),
            equity=r.meters.equity,
            breakers=[
                ReadingOut(breaker=x.breaker.value, value=x.value, limit=x.limit, tripped=x.tripped)
                for x in r.meters.readings(breakers_of(r))
            ],
        )
        for r in store.bots()
        if r.name in mine
    ]
    trips = store.trips(visible, limit=MAX_TRIPS)
    return RiskStatusOut(
        states=[
            _state_out(s, v)
            for s, v in sorted(states.items(), key=lambda kv: str(kv[0]))
            if s in visible
        ],
        bots=bots,
        trips=[
            TripOut(
                scope=str(t.scope),
                breaker=t.breaker.value,
                value=t.value,
                limit=t.limit,
                tripped_at=t.tripped_at,
                reset_at=t.reset_at,
                reset_by=t.reset_by,
                reset_reason=t.reset_reason,
            )
            for t in trips
        ],
    )


@router.post(
    "/risk/halt", response_model=HaltOut, responses=responses(400, 401, 403, 404, 422, 429)
)
def halt(body: HaltBody, principal: Trader, ctx: Ctx, ip: ClientIp) -> HaltOut:
    """Emergency stop: the scope is HALTED (or REDUCING) when this answers, and the halted
    bots' open orders are canceled at their venues. `failed` > 0: the scope stays halted;
    cancel those orders at the venue by hand and halt again."""
    scope = _scope_of(ctx, principal, body)
    outcome = asyncio.run(
        _control(ctx, principal, ip).halt(scope, body.reason, reducing=body.reducing)
    )
    return HaltOut(
        scope=str(outcome.scope),
        state=outcome.state,
        changed=outcome.changed,
        canceled=[
            CancelOut(
                bot=c.order.bot,
                account=c.order.account,
                symbol=c.order.symbol,
                client_order_id=c.order.client_order_id,
                result=c.result,
            )
            for c in outcome.canceled
        ],
        failed=outcome.failed,
    )


def _check_reset_right(principal: Principal, scope: Scope, stored: StoredState | None) -> None:
    """A trader lifts only what they or the system set; an admin's or operator's halt is
    theirs to lift (an incident response must not be undone by the account it contains)."""
    if stored is None or _is_admin(principal) or stored.actor in (SYSTEM, principal.actor):
        return
    raise Forbidden(
        f"{scope} was set {stored.state.value} by an administrator or operator; ask them to "
        "reset it"
    )


@router.post(
    "/risk/reset", response_model=ResetOut, responses=responses(400, 401, 403, 404, 409, 422, 429)
)
def reset(body: ResetBody, principal: Trader, ctx: Ctx, ip: ClientIp) -> ResetOut:
    """Make a halted scope ACTIVE again and re-base its breakers at the current equity. Needs
    a step-up; 409 when the scope is ACTIVE already."""
    scope = _scope_of(ctx, principal, body)
    stored = SqlRiskStore(ctx.engine).states().get(scope)
    if stored is None:
        raise Conflict(f"{scope} is ACTIVE already; nothing to reset")
    _check_reset_right(principal, scope, stored)
    step_up(ctx, principal, body, ip)
    previous = _control(ctx, principal, ip).reset(scope, body.reason)
    if previous is None:  # another request reset it meanwhile
        previous = TradingState.ACTIVE
    return ResetOut(scope=str(scope), state=TradingState.ACTIVE, previous=previous)


@router.post(
    "/bots/{bot_id}/promote",
    response_model=PromotionOut,
    responses=responses(400, 401, 403, 404, 409, 422, 429),
)
def promote(
    bot_id: BotId, body: PromoteBody, principal: Trader, ctx: Ctx, ip: ClientIp
) -> PromotionOut:
    """The bot's paper record against the promotion thresholds; it is promoted to live trading
    only if it passes (`promoted`, else `failures` says what falls short). Needs a step-up;
    `override` (with a `reason`) is for admins."""
    info = bot_of(ctx, principal, bot_id)
    if body.override and not _is_admin(principal):
        raise Forbidden("overriding the promotion gate is for admins; the gate is their policy")
    if body.override and not (body.reason or "").strip():
        raise ConfigError("an override needs a `reason`; it goes to the audit log")
    step_up(ctx, principal, body, ip)
    thresholds = OperatorPolicy.from_settings(ctx.settings).promotion
    try:
        outcome = _control(ctx, principal, ip).promote(
            info.name, thresholds, override=body.override, reason=body.reason or ""
        )
    except UnknownRiskBot:
        raise Conflict(f"bot {info.name} has no paper record yet: run it on paper first") from None
    verdict = outcome.verdict
    r = verdict.record if verdict else None
    return PromotionOut(
        bot=info.name,
        promoted=outcome.promoted,
        promoted_at=outcome.promoted_at,
        reason=outcome.reason,
        record=None if r is None else RecordOut(
            trades=r.trades, win_rate_pct=r.win_rate_pct, profit_factor=r.profit_factor,
            max_drawdown_pct=r.max_drawdown_pct, net=r.net,
        ),
        thresholds=ThresholdsOut(
            min_trades=thresholds.min_trades, min_win_rate_pct=thresholds.min_win_rate_pct,
            min_profit_factor=thresholds.min_profit_factor,
            max_drawdown_pct=thresholds.max_drawdown_pct,
        ),
        failures=list(verdict.failures) if verdict else [],
    )  # fmt: skip
