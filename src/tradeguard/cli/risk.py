"""`tradeguard risk` (status, halt, reset) and `tradeguard bots promote`.

A halt is written to the database first, so every order path that reads the states refuses
new orders from then on, and then the halted bots' journaled orders are canceled at their
venues; the command prints each one. Nothing here needs the vault unless an order to cancel
sits at a real venue: an emergency stop must work when the vault cannot be opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table

from tradeguard.audit import AuditLog
from tradeguard.cli.console import err, out
from tradeguard.cli.inputs import BadInput
from tradeguard.cli.open_audit import opened_for_change
from tradeguard.cli.open_vault import opened_vault
from tradeguard.config import Settings
from tradeguard.core.errors import OrderNotFound, TradeguardError
from tradeguard.core.events import DomainEvent, EventName
from tradeguard.risk import GLOBAL, Breakers, OperatorPolicy, Scope, TradingState
from tradeguard.risk.promotion import Verdict, judge, paper_record
from tradeguard.risk.store import BotRecord, SqlRiskStore, StoredOrder
from tradeguard.vault import Vault
from tradeguard.venues.paper import PaperVenue
from tradeguard.venues.protocol import Venue

__all__ = ["bots_app", "risk_app"]

risk_app = typer.Typer(
    help="Trading states, circuit breakers and the emergency stop.", no_args_is_help=True
)
bots_app = typer.Typer(help="Bots: promotion from paper to live.", no_args_is_help=True)

ACTOR = "operator"
LATE_CHECKS, LATE_WAIT = 5, 0.5  # seconds: longer than an order takes to reach a venue


@dataclass
class _Risk:
    settings: Settings
    db: sa.Engine
    audit: AuditLog
    store: SqlRiskStore
    resources: ExitStack
    vault: Vault | None = None

    def emit(self, name: EventName, subject: str, **details: str | int) -> None:
        self.audit.emit(
            DomainEvent(name, datetime.now(UTC), actor=ACTOR, subject=subject, details=details)
        )


@contextmanager
def _opened() -> Iterator[_Risk]:
    with opened_for_change() as (settings, db, audit), ExitStack() as resources:
        yield _Risk(settings, db, audit, SqlRiskStore(db), resources)


def _scope(all_: bool, user: str | None, bot: str | None) -> Scope:
    given = [s for s in (all_ and "--all", user and "--user", bot and "--bot") if s]
    if len(given) != 1:
        raise BadInput("name exactly one scope: --all, --user NAME or --bot NAME")
    try:
        if user:
            return Scope.user(user)
        return Scope.bot(bot) if bot else GLOBAL
    except ValueError as error:
        raise BadInput(str(error)) from None


def _bots_in(records: list[BotRecord], scope: Scope) -> list[BotRecord]:
    if scope == GLOBAL:
        return records
    if scope.kind.value == "user":
        return [r for r in records if r.user == scope.name]
    return [r for r in records if r.name == scope.name]


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or not reason.isprintable() or len(reason) > 200:
        raise BadInput("--reason is one line of up to 200 characters saying why")
    return reason


AllOpt = Annotated[bool, typer.Option("--all", help="Every bot of every user.")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Every bot of this user.")]
BotOpt = Annotated[str | None, typer.Option("--bot", help="This bot.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; it goes into the audit log.")]


# -- status -------------------------------------------------------------------------------------


@risk_app.command("status")
def status() -> None:
    """Trading states, each bot's breaker values against its limits, and the last trips."""
    with _opened() as risk:
        states = risk.store.states()
        bots = risk.store.bots()
        trips = risk.store.trips(limit=10)
    table = Table(title="trading states")
    for column in ("scope", "state", "since", "by", "reason"):
        table.add_column(column)
    if not states:
        table.add_row("global", "ACTIVE", "-", "-", "every scope is ACTIVE")
    for scope, s in sorted(states.items(), key=lambda kv: str(kv[0])):
        table.add_row(
            str(scope), s.state.value, s.changed_at.isoformat(timespec="seconds"), s.actor,
            s.reason,
        )  # fmt: skip
    out.print(table)
    table = Table(title="bots")
    for column in ("bot", "user", "mode", "state", "equity", "breakers (value / limit)"):
        table.add_column(column)
    for record in bots:
        scopes = (GLOBAL, Scope.user(record.user), Scope.bot(record.name))
        worst = max(
            (states[s].state for s in scopes if s in states),
            key=lambda st: st.rank,
            default=TradingState.ACTIVE,
        )
        readings = record.meters.readings(record.breakers or Breakers())
        shown = ", ".join(r.describe() for r in readings) or "none"
        table.add_row(
            record.name, record.user, record.mode, worst.value, f"{record.meters.equity:.8g}",
            shown,
        )  # fmt: skip
    out.print(table)
    table = Table(title="last trips")
    for column in ("when", "scope", "breaker", "value", "limit", "reset"):
        table.add_column(column)
    for trip in trips:
        reset = "not reset" if trip.reset_at is None else f"by {trip.reset_by}: {trip.reset_reason}"
        table.add_row(
            trip.tripped_at.isoformat(timespec="seconds"), str(trip.scope), trip.breaker.value,
            f"{trip.value:.4g}", str(trip.limit), reset,
        )  # fmt: skip
    out.print(table)


# -- halt ---------------------------------------------------------------------------------------


@risk_app.command("halt")
def halt(
    all_: AllOpt = False,
    user: UserOpt = None,
    bot: BotOpt = None,
    reason: ReasonOpt = "emergency stop",
    reducing: Annotated[
        bool,
        typer.Option("--reducing", help="REDUCING instead of HALTED: exits still pass."),
    ] = False,
) -> None:
    """Emergency stop: the scope is HALTED (or REDUCING) before this returns, and the halted
    bots' open orders are canceled; prints what it canceled. Exit 1 if a cancel failed."""
    scope = _scope(all_, user, bot)
    why = _reason(reason)
    state = TradingState.REDUCING if reducing else TradingState.HALTED
    with _opened() as risk:
        risk.store.save_state(scope, state, why, ACTOR, datetime.now(UTC))
        affected = [r.name for r in _bots_in(risk.store.bots(), scope)]
        orders = risk.store.orders(affected) if state is TradingState.HALTED else []
        risk.emit(
            EventName.RISK_STATE_CHANGED, str(scope), to=state.value, reason=why,
            orders_to_cancel=len(orders),
        )  # fmt: skip
        out.print(f"{scope} is {state.value}: new orders are refused.", markup=False)
        failed = asyncio.run(_cancel(risk, orders))
        if orders:
            risk.emit(
                EventName.RISK_ORDERS_CANCELED, str(scope), canceled=len(orders) - failed,
                failed=failed,
            )  # fmt: skip
    if failed:
        raise typer.Exit(1)


async def _cancel(risk: _Risk, orders: list[StoredOrder]) -> int:
    """Cancel each journaled order at its venue; the number that could not be canceled."""
    if not orders:
        out.print("No open orders to cancel.")
        return 0
    table = Table(title="canceled")
    for column in ("bot", "account", "symbol", "client order id", "result"):
        table.add_column(column)
    failed = 0
    venues: dict[str, Venue] = {}
    try:
        for order in orders:
            try:
                venue = venues.get(order.account) or _venue_for(risk, order.account)
                venues[order.account] = venue
                await venue.cancel_order(order.symbol, client_order_id=order.client_order_id)
                result = "canceled"
            except OrderNotFound:
                result = await _late(venue, risk.store, order)
            except TradeguardError as error:
                failed += 1
                result = f"FAILED: {error.message}"
            if not result.startswith("FAILED"):
                risk.store.forget_order(order.client_order_id)
            table.add_row(order.bot, order.account, order.symbol, order.client_order_id, result)
    finally:
        for venue in venues.values():
            await venue.close()
    out.print(table)
    if failed:
        err.print(
            f"{failed} order(s) could not be canceled; the scope stays halted. Cancel them at "
            "the venue by hand and run the command again.",
            markup=False,
        )
    return failed


async def _late(venue: Venue, store: SqlRiskStore, order: StoredOrder) -> str:
    """An order in the journal that the venue does not have: either it has ended, or another
    process journaled it and is sending it now. Watch it for a few seconds before believing it
    is gone; if it arrives, cancel it."""
    for _ in range(LATE_CHECKS):
        await asyncio.sleep(LATE_WAIT)
        if order.client_order_id not in {o.client_order_id for o in store.orders([order.bot])}:
            return "already closed"
        try:
            await venue.cancel_order(order.symbol, client_order_id=order.client_order_id)
        except OrderNotFound:
            continue
        return "canceled (arrived late)"
    return "not at the venue"


def _venue_for(risk: _Risk, account: str) -> Venue:
    """`paper:NAME` is a paper account; `VENUE:CREDENTIAL` (`binance:main`) a stored credential,
    opened through the vault only now that an order there needs canceling."""
    kind, _, name = account.partition(":")
    if kind == "paper":
        return PaperVenue(risk.db, account=name, markets={})
    # ccxt takes about a second to import: only a real venue pays for it
    from tradeguard.venues.connect import ccxt_venue_for

    if risk.vault is None:
        risk.vault = risk.resources.enter_context(opened_vault())
    return ccxt_venue_for(risk.vault, risk.settings, name, venue=kind)


# -- reset --------------------------------------------------------------------------------------


@risk_app.command("reset")
def reset(
    all_: AllOpt = False,
    user: UserOpt = None,
    bot: BotOpt = None,
    reason: Annotated[str, typer.Option("--reason", help="Why; it goes into the audit log.")] = "",
) -> None:
    """Make a halted scope ACTIVE again and re-base its breakers at the current equity."""
    scope = _scope(all_, user, bot)
    why = _reason(reason)
    with _opened() as risk:
        states = risk.store.states()
        if scope not in states:
            out.print(f"{scope} is already ACTIVE; nothing to reset.", markup=False)
            return
        now = datetime.now(UTC)
        for record in _bots_in(risk.store.bots(), scope) if scope.kind.value == "bot" else []:
            record.meters.rebase(now)
            risk.store.save_bot(record, now)
        risk.store.reset(scope, ACTOR, why, now)
        risk.emit(EventName.RISK_RESET, str(scope), reason=why, **{"from": states[scope].state})
    out.print(f"{scope} is ACTIVE again ({why}).", markup=False)


# -- promotion ----------------------------------------------------------------------------------


@bots_app.command("promote")
def promote(
    bot: Annotated[str, typer.Argument(help="The bot to move from paper to live trading.")],
    override: Annotated[
        bool, typer.Option("--override", help="Promote although the record falls short.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (required with --override).")] = "",
) -> None:
    """Show the bot's paper record against the thresholds; promote it only if it passes."""
    why = _reason(reason) if override else "passed the gate"
    with _opened() as risk:
        record = risk.store.load_bot(bot)
        if record is None:
            raise BadInput(f"no bot {bot!r} has traded under the risk engine yet")
        if record.promoted_at is not None:
            out.print(f"{bot} was promoted on {record.promoted_at:%Y-%m-%d %H:%M} UTC.")
            return
        pnls = [t.pnl for t in risk.store.closed_trades(bot, "paper")]
        verdict = judge(
            paper_record(pnls, record.capital),
            OperatorPolicy.from_settings(risk.settings).promotion,
        )
        _print_verdict(bot, verdict)
        if not verdict.passed and not override:
            risk.emit(EventName.BOT_PROMOTION_REFUSED, f"bot:{bot}", failures=len(verdict.failures))
            err.print(f"Not promoted: {'; '.join(verdict.failures)}.", markup=False)
            raise typer.Exit(1)
        why = why if not verdict.passed else "passed the gate"
        risk.store.promote(bot, datetime.now(UTC))
        risk.emit(
            EventName.BOT_PROMOTED, f"bot:{bot}", reason=why,
            overridden=int(not verdict.passed), failures=len(verdict.failures),
        )  # fmt: skip
    out.print(f"{bot} may now trade live ({why}).", markup=False)


def _print_verdict(bot: str, verdict: Verdict) -> None:
    r, t = verdict.record, verdict.thresholds
    table = Table(title=f"paper record of {bot}")
    for column in ("measure", "value", "threshold"):
        table.add_column(column)
    rate = "-" if r.win_rate_pct is None else f"{r.win_rate_pct:.2f}%"
    factor = "-" if r.profit_factor is None else f"{r.profit_factor:.3f}"
    table.add_row("closed trades", str(r.trades), f">= {t.min_trades}")
    table.add_row("win rate", rate, f">= {t.min_win_rate_pct}%")
    table.add_row("profit factor", factor, f">= {t.min_profit_factor}")
    table.add_row("max drawdown", f"{r.max_drawdown_pct:.2f}%", f"<= {t.max_drawdown_pct}%")
    table.add_row("net PnL", f"{r.net:.8g}", "")
    out.print(table)
