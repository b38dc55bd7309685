"""`tradeguard users`: the people whose credentials the vault holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tradeguard.auth.accounts import Role, check_email
from tradeguard.cli.console import err, out
from tradeguard.cli.open_vault import opened_vault
from tradeguard.cli.prompts import ask_code, ask_new_password
from tradeguard.cli.settings import cli_settings
from tradeguard.core.errors import AuthError, InvalidCode
from tradeguard.risk.control import check_reason
from tradeguard.secrets import Password, Token
from tradeguard.vault.users import all_users, check_name

if TYPE_CHECKING:
    from tradeguard.auth.service import Principal
    from tradeguard.web.context import AppContext

__all__ = ["app"]

app = typer.Typer(help="Users and their vault mode.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '_', '.', '-'.")],
    vault_mode: Annotated[
        str,
        typer.Option(
            "--vault-mode",
            help="service: the master key opens this user's vault (bots run unattended). "
            "password: only the user's vault password does (bots trade while it is unlocked).",
        ),
    ],
) -> None:
    """Add a user with a fresh data key."""
    check_name(name)
    if vault_mode not in ("service", "password"):
        raise typer.BadParameter("choose service or password", param_hint="--vault-mode")
    with opened_vault() as vault:
        password = ask_new_password(name) if vault_mode == "password" else None
        try:
            user = vault.add_user(name, vault_mode, password)  # type: ignore[arg-type]
        finally:
            if password is not None:
                password.wipe()
    out.print(f"Added user {user.name} (id {user.id}, vault mode {user.vault_mode}).", markup=False)


@app.command("list")
def list_users() -> None:
    """List users and their vault mode."""
    with opened_vault() as vault, vault.engine.connect() as conn:
        rows = all_users(conn)
    table = Table(title="users")
    for column in ("id", "name", "vault mode", "master key version", "DEK version", "created"):
        table.add_column(column)
    for u in rows:
        version = str(u.encryption_key_version) if u.encryption_key_version else "-"
        table.add_row(
            str(u.id), u.name, u.vault_mode, version, str(u.dek_version),
            u.created_at.isoformat(timespec="seconds"),
        )  # fmt: skip
    out.print(table)


@app.command("reset-2fa")
def reset_2fa(
    name: Annotated[str, typer.Argument(help="Whose second factor to remove.")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why, for the audit log: who asked, and how you checked it was them.",
        ),
    ],
) -> None:
    """Remove a user's second factor when they lost both the authenticator and the backup
    codes. Check who is asking by other means first: this is the one way around the factor.
    Every session of theirs ends; they enrol again at their next login."""
    check_name(name)
    reason = check_reason(reason)  # one printable line for the audit log
    if len(reason) < 10:
        raise typer.BadParameter(
            "say who asked and how you checked it was them", param_hint="--reason"
        )
    from tradeguard.web.runtime import open_context

    with open_context(cli_settings()) as ctx:
        account = ctx.accounts.account(ctx.vault.user(name).id)
        ctx.accounts.reset_second_factor(account.id, actor="operator", reason=reason)
    out.print(
        f"Removed the second factor of {name}; every session of theirs ended. They must enrol "
        "again (an admin has no admin rights until then).",
        markup=False,
    )


_CODE_TRIES = 3
_HERE = "127.0.0.1"  # the address a command at this terminal logs in from


@app.command("create-admin")
def create_admin(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '_', '.', '-'.")],
    email: Annotated[str, typer.Option("--email", help="For password resets.")],
) -> None:
    """Create an admin: a login password (asked twice), two-factor authentication enrolled
    here (scan the QR code, type one code), and 10 backup codes shown once."""
    from tradeguard.web.runtime import open_context  # the account stack, for this command only

    check_name(name)
    email = check_email(email)
    with open_context(cli_settings()) as ctx:
        password = ask_new_password(name, "login password")
        try:
            ctx.accounts.create_account(name, email, password, Role.ADMIN, actor="operator")
            principal = _log_in_here(ctx, name, password)
            try:
                codes = _enrol(ctx, principal, password)
            finally:
                ctx.accounts.logout(principal)
        finally:
            password.wipe()
    out.print(f"\nAdmin {name} created, with two-factor authentication on.", markup=False)
    out.print("Backup codes, each good once in place of a code (shown only now; keep them "
              "offline):", markup=False)  # fmt: skip
    for code in codes:
        with code.reveal_text() as text:
            out.print(f"  {text}", markup=False)
        code.wipe()


def _log_in_here(ctx: AppContext, name: str, password: Password) -> Principal:
    """A session for the enrolment, as a login at this terminal (127.0.0.1); ended after."""
    result = ctx.accounts.login(
        name, password, code=None, ip=_HERE, user_agent="tradeguard users create-admin"
    )
    return ctx.accounts.authenticate(result.access_token)


def _enrol(ctx: AppContext, principal: Principal, password: Password) -> list[Token]:
    import segno

    from tradeguard.auth.service import StepUp

    enrolment = ctx.accounts.begin_totp(principal, StepUp(password=password), _HERE)
    out.print("\nScan this QR code with an authenticator app, or enter this URI in it:\n")
    segno.make(enrolment.uri).terminal(compact=True)
    out.print(f"\n{enrolment.uri}\n", markup=False)
    for _ in range(_CODE_TRIES):
        try:
            codes, renewed = ctx.accounts.confirm_totp(principal, ask_code("code from the app"))
            ctx.accounts.logout(ctx.accounts.authenticate(renewed.access_token))
            return codes
        except InvalidCode:
            err.print("That code is wrong or expired; type the current one.", markup=False)
    raise AuthError(
        f"no valid code in {_CODE_TRIES} tries: the admin exists but without two-factor "
        "authentication, so without admin rights; log in and turn it on (POST /api/me/2fa)"
    )
