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
from typing import Annotated

import typer
from rich.table import Table

from tradeguard.cli.console import err, out
from tradeguard.cli.inputs import BadInput
from tradeguard.cli.open_audit import opened_for_change
from tradeguard.cli.open_vault import opened_vault
from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError
from tradeguard.risk import GLOBAL, OperatorPolicy, Scope
from tradeguard.risk.control import (
    HaltOutcome,
    RiskControl,
    UnknownRiskBot,
    breakers_of,
    check_reason,
    effective_state,
    venue_opener,
)
from tradeguard.risk.promotion import Verdict
from tradeguard.risk.store import SqlRiskStore
from tradeguard.vault import Vault

__all__ = ["bots_app", "risk_app"]

risk_app = typer.Typer(
    help="Trading states, circuit breakers and the emergency stop.", no_args_is_help=True
)
bots_app = typer.Typer(help="Bots: promotion from paper to live.", no_args_is_help=True)

ACTOR = "operator"


@dataclass
class _Risk:
    settings: Settings
    store: SqlRiskStore
    control: RiskControl


@contextmanager
def _opened() -> Iterator[_Risk]:
    with opened_for_change() as (settings, db, audit), ExitStack() as resources:
        vaults: list[Vault] = []

        def vault() -> Vault:  # opened once, and only when a real venue needs it
            if not vaults:
                vaults.append(resources.enter_context(opened_vault()))
            return vaults[0]

        store = SqlRiskStore(db)
        control = RiskControl(store, audit, venue_opener(db, settings, vault), actor=ACTOR)
        yield _Risk(settings, store, control)


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


def _reason(reason: str) -> str:
    try:
        return check_reason(reason)
    except ConfigError as error:
        raise BadInput(error.message) from None


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
        worst = effective_state(states, record.user, record.name)
        readings = record.meters.readings(breakers_of(record))
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
    with _opened() as risk:
        outcome = asyncio.run(risk.control.halt(scope, why, reducing=reducing))
    _print_halt(outcome)
    if outcome.failed:
        raise typer.Exit(1)


def _print_halt(outcome: HaltOutcome) -> None:
    kept = "" if outcome.changed else " (already; a halt never loosens a scope)"
    out.print(
        f"{outcome.scope} is {outcome.state.value}{kept}: new orders are refused.", markup=False
    )
    if not outcome.canceled:
        out.print("No open orders to cancel.")
        return
    table = Table(title="canceled")
    for column in ("bot", "account", "symbol", "client order id", "result"):
        table.add_column(column)
    for c in outcome.canceled:
        o = c.order
        table.add_row(o.bot, o.account, o.symbol, o.client_order_id, c.result)
    out.print(table)
    if outcome.failed:
        err.print(
            f"{outcome.failed} order(s) could not be canceled; the scope stays halted. Cancel "
            "them at the venue by hand and run the command again.",
            markup=False,
        )


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
        previous = risk.control.reset(scope, why)
    if previous is None:
        out.print(f"{scope} is already ACTIVE; nothing to reset.", markup=False)
        return
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
    if override:
        _reason(reason)
    with _opened() as risk:
        policy = OperatorPolicy.from_settings(risk.settings).promotion
        try:
            outcome = risk.control.promote(bot, policy, override=override, reason=reason)
        except UnknownRiskBot as error:
            raise BadInput(error.message) from None
    if outcome.verdict is None:
        assert outcome.promoted_at is not None  # noqa: S101 - promoted before
        out.print(f"{bot} was promoted on {outcome.promoted_at:%Y-%m-%d %H:%M} UTC.")
        return
    _print_verdict(bot, outcome.verdict)
    if not outcome.promoted:
        err.print(f"Not promoted: {'; '.join(outcome.verdict.failures)}.", markup=False)
        raise typer.Exit(1)
    out.print(f"{bot} may now trade live ({outcome.reason}).", markup=False)


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
