"""Acting on the risk engine's stored state from outside a running engine: the emergency halt,
the reset, and promotion through the paper-to-live gate. One implementation behind
`tradeguard risk halt|reset`, `tradeguard bots promote` and the HTTP API.

A halt is written to the database first, so every order path that reads the states refuses
new orders from then on; then the halted bots' journaled orders are canceled at their venues.
A halt never loosens a scope: asking for REDUCING on a HALTED scope, or halting a scope that is
already HALTED, keeps the stored state (and who set it) and only cancels again. Nothing here
opens the vault unless an order to cancel sits at a real venue: an emergency stop must work when
the vault cannot be opened.

    control = RiskControl(SqlRiskStore(db), audit, venue_opener(db, settings, vault), actor=...)
    outcome = await control.halt(Scope.bot("sma"), "fat finger")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError, OrderNotFound, TradeguardError
from tradeguard.core.events import Detail, DomainEvent, EventName, EventSink
from tradeguard.risk.limits import Breakers, PromotionThresholds
from tradeguard.risk.promotion import Verdict, judge, paper_record
from tradeguard.risk.states import GLOBAL, Scope, ScopeKind, TradingState, strictest
from tradeguard.risk.store import BotRecord, SqlRiskStore, StoredOrder, StoredState
from tradeguard.vault import Vault
from tradeguard.venues.paper import PaperVenue
from tradeguard.venues.protocol import Venue

__all__ = [
    "CancelOutcome",
    "HaltOutcome",
    "PromotionOutcome",
    "RiskControl",
    "UnknownRiskBot",
    "VenueOpener",
    "bots_in",
    "check_reason",
    "effective_state",
    "venue_opener",
]

LATE_CHECKS, LATE_WAIT = 5, 0.5  # seconds: longer than an order takes to reach a venue
MAX_REASON = 200

# A venue for an account key (`paper:alice`, `binance:main`) of a user's bot.
VenueOpener = Callable[[str, str], Venue]


class UnknownRiskBot(ConfigError):
    """No bot of that name has traded under the risk engine."""


def check_reason(reason: str, field: str = "--reason") -> str:
    """A reason for the audit log: one printable line of up to 200 characters."""
    reason = reason.strip()
    if not reason or not reason.isprintable() or len(reason) > MAX_REASON:
        raise ConfigError(f"{field} is one line of up to {MAX_REASON} characters saying why")
    return reason


def bots_in(records: list[BotRecord], scope: Scope) -> list[BotRecord]:
    if scope == GLOBAL:
        return records
    if scope.kind is ScopeKind.USER:
        return [r for r in records if r.user == scope.name]
    return [r for r in records if r.name == scope.name]


def effective_state(states: dict[Scope, StoredState], user: str, bot: str) -> TradingState:
    """What a bot may do: the strictest of the global, its user's and its own state."""
    scopes = (GLOBAL, Scope.user(user), Scope.bot(bot))
    return strictest(*(states[s].state for s in scopes if s in states))


def breakers_of(record: BotRecord) -> Breakers:
    return record.breakers or Breakers()


@dataclass(frozen=True)
class CancelOutcome:
    order: StoredOrder
    result: str  # canceled, already closed, canceled (arrived late), not at the venue, FAILED: ..

    @property
    def failed(self) -> bool:
        return self.result.startswith("FAILED")


@dataclass(frozen=True)
class HaltOutcome:
    scope: Scope
    state: TradingState  # the scope's state now (never looser than before)
    changed: bool
    canceled: tuple[CancelOutcome, ...]

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.canceled)


@dataclass(frozen=True)
class PromotionOutcome:
    bot: str
    verdict: Verdict | None  # None: it had been promoted before
    promoted: bool  # it may trade live now
    promoted_at: datetime | None
    reason: str | None = None  # why it was promoted (the gate passed, or the override's reason)


def venue_opener(db: sa.Engine, settings: Settings, vault: Callable[[], Vault]) -> VenueOpener:
    """`paper:NAME` is a paper account; `VENUE:CREDENTIAL` the user's stored credential, opened
    through the vault only when an order there needs canceling (`vault` is called then)."""

    def open_venue(account: str, user: str) -> Venue:
        kind, _, name = account.partition(":")
        if kind == "paper":
            return PaperVenue(db, account=name, markets={})
        # ccxt takes about a second to import: only a real venue pays for it
        from tradeguard.venues.connect import ccxt_venue_for

        opened = vault()
        credential = opened.credential(name, user).id  # the bot owner's, never a namesake's
        return ccxt_venue_for(opened, settings, credential, venue=kind)

    return open_venue


class RiskControl:
    """Who acts (`actor`, `ip`) is fixed per instance: every event it writes names them."""

    def __init__(
        self,
        store: SqlRiskStore,
        events: EventSink,
        venues: VenueOpener,
        *,
        actor: str,
        ip: str | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.venues = venues
        self.actor = actor
        self.ip = ip

    def _emit(self, name: EventName, subject: str, **details: Detail) -> None:
        at = datetime.now(UTC)
        self.events.emit(DomainEvent(name, at, self.actor, subject, details, self.ip))

    # -- halt -----------------------------------------------------------------------------------

    async def halt(self, scope: Scope, reason: str, *, reducing: bool = False) -> HaltOutcome:
        """The scope is HALTED (or REDUCING) when this returns, then the bots' open orders are
        canceled (when HALTED); each cancel's outcome is in the result."""
        why = check_reason(reason)
        wanted = TradingState.REDUCING if reducing else TradingState.HALTED
        stored = self.store.states().get(scope)
        before = TradingState.ACTIVE if stored is None else stored.state
        state = strictest(before, wanted)
        if state is not before:
            self.store.save_state(scope, state, why, self.actor, datetime.now(UTC))
        # Listed after the state is stored: an order journaled from now on is refused first.
        records = bots_in(self.store.bots(), scope)
        orders = (
            self.store.orders([r.name for r in records]) if state is TradingState.HALTED else []
        )
        if state is not before:
            self._emit(
                EventName.RISK_STATE_CHANGED, str(scope), to=state.value, reason=why,
                orders_to_cancel=len(orders), **{"from": before.value},
            )  # fmt: skip
        owners = {r.name: r.user for r in records}
        canceled = tuple(await self._cancel(orders, owners))
        if canceled:
            failed = sum(c.failed for c in canceled)
            self._emit(
                EventName.RISK_ORDERS_CANCELED, str(scope), canceled=len(canceled) - failed,
                failed=failed,
            )  # fmt: skip
        return HaltOutcome(scope, state, state is not before, canceled)

    async def _cancel(
        self, orders: list[StoredOrder], owners: dict[str, str]
    ) -> list[CancelOutcome]:
        """Cancel each journaled order at its venue, one venue client per account of a user
        (credential names are unique per user only: two users may both have `binance:main`)."""
        outcomes = []
        venues: dict[tuple[str, str], Venue] = {}
        try:
            for order in orders:
                result = await self._cancel_one(order, owners[order.bot], venues)
                if not result.startswith("FAILED"):
                    self.store.forget_order(order.client_order_id)
                outcomes.append(CancelOutcome(order, result))
        finally:
            for venue in venues.values():
                await venue.close()
        return outcomes

    async def _cancel_one(
        self, order: StoredOrder, user: str, venues: dict[tuple[str, str], Venue]
    ) -> str:
        key = (user, order.account)
        try:
            venue = venues.get(key) or self.venues(order.account, user)
            venues[key] = venue
            await venue.cancel_order(order.symbol, client_order_id=order.client_order_id)
        except OrderNotFound:
            return await self._late(venue, order)
        except TradeguardError as error:
            return f"FAILED: {error.message}"
        return "canceled"

    async def _late(self, venue: Venue, order: StoredOrder) -> str:
        """An order in the journal that the venue does not have: either it has ended, or
        another process journaled it and is sending it now. Watch it for a few seconds before
        believing it is gone; if it arrives, cancel it."""
        for _ in range(LATE_CHECKS):
            await asyncio.sleep(LATE_WAIT)
            journal = {o.client_order_id for o in self.store.orders([order.bot])}
            if order.client_order_id not in journal:
                return "already closed"
            try:
                await venue.cancel_order(order.symbol, client_order_id=order.client_order_id)
            except OrderNotFound:
                continue
            return "canceled (arrived late)"
        return "not at the venue"

    # -- reset ----------------------------------------------------------------------------------

    def reset(self, scope: Scope, reason: str) -> TradingState | None:
        """Make a scope ACTIVE again and re-base its breakers at the current equity (a bot's
        meters for a bot scope, the user's portfolio meters for a user scope); the state it
        had, or None when it was ACTIVE already (nothing changes then)."""
        why = check_reason(reason)
        stored = self.store.states().get(scope)
        if stored is None:
            return None
        now = datetime.now(UTC)
        if scope.kind is ScopeKind.BOT:
            for record in bots_in(self.store.bots(), scope):
                record.meters.rebase(now)
                self.store.save_bot(record, now)
        elif scope.kind is ScopeKind.USER:
            meters = self.store.load_user(scope.name)
            if meters is not None:
                meters.rebase()
                self.store.save_user(scope.name, meters, now)
        self.store.reset(scope, self.actor, why, now)
        self._emit(EventName.RISK_RESET, str(scope), reason=why, **{"from": stored.state.value})
        return stored.state

    # -- promotion ------------------------------------------------------------------------------

    def promote(
        self,
        bot: str,
        thresholds: PromotionThresholds,
        *,
        override: bool = False,
        reason: str = "",
    ) -> PromotionOutcome:
        """Judge the bot's paper record against the thresholds and promote it if it passes
        (or, with `override` and a reason, although it falls short). A refusal is audited."""
        why = check_reason(reason) if override else "passed the gate"
        record = self.store.load_bot(bot)
        if record is None:
            raise UnknownRiskBot(f"no bot {bot!r} has traded under the risk engine yet")
        if record.promoted_at is not None:
            return PromotionOutcome(bot, None, True, record.promoted_at)
        pnls = [t.pnl for t in self.store.closed_trades(bot, "paper")]
        verdict = judge(paper_record(pnls, record.capital), thresholds)
        subject = f"bot:{bot}"
        if not verdict.passed and not override:
            self._emit(EventName.BOT_PROMOTION_REFUSED, subject, failures=len(verdict.failures))
            return PromotionOutcome(bot, verdict, False, None)
        why = why if not verdict.passed else "passed the gate"
        now = datetime.now(UTC)
        self.store.promote(bot, now)
        self._emit(
            EventName.BOT_PROMOTED, subject, reason=why, overridden=int(not verdict.passed),
            failures=len(verdict.failures),
        )  # fmt: skip
        return PromotionOutcome(bot, verdict, True, now, why)
