"""`tradeguard vault`: credentials, the master keyring and key rotation.

No command prints a secret or takes one as an argument; secrets are typed at a hidden prompt or
piped in (`--stdin-json`). Commands that need a password-mode user's data key ask for that
user's vault password and hold the key only while the command runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from tradeguard.bots.registry import check_credential_unused
from tradeguard.cli.console import out
from tradeguard.cli.open_vault import opened_vault
from tradeguard.cli.prompts import ask_new_password, ask_password, entered_fields
from tradeguard.cli.settings import cli_settings
from tradeguard.core.events import EventName
from tradeguard.vault import (
    CredentialInfo,
    Vault,
    pending_rewrap,
    retire_below,
    rewrap,
    rotate_dek,
    schema_for,
)
from tradeguard.vault.master import init_keyring_file, keyring_file_path, rotate_keyring_file
from tradeguard.venues import MarketKind

__all__ = ["app"]

app = typer.Typer(help="Encrypted venue credentials and their keys.", no_args_is_help=True)
master = typer.Typer(help="The master keyring that wraps service-mode data keys.")
app.add_typer(master, name="master-key")

UserOpt = Annotated[str, typer.Option("--user", help="The user who owns the credential.")]
StdinJson = Annotated[
    bool,
    typer.Option(
        "--stdin-json",
        help="Read the fields as one JSON object from stdin (for a password-mode user, the "
        "vault password comes first, on a line of its own).",
    ),
]


def _unlock_if_needed(vault: Vault, user_name: str) -> None:
    """For a password-mode user: ask for the vault password and unlock for this command."""
    user = vault.user(user_name)
    if user.vault_mode == "password" and not vault.sessions.is_open(user.id):
        with ask_password(f"vault password for {user_name}") as password:
            vault.unlock(user_name, password)


def _describe(info: CredentialInfo) -> str:
    shown = ", ".join(f"{k} {v}" for k, v in info.display.items()) or "no public id"
    return f"{info.user_name}/{info.name} ({info.venue}, {shown}) id {info.id}"


def _key_status(info: CredentialInfo) -> str:
    if info.blocked:
        return "BLOCKED"
    if info.permissions_checked_at is None:
        return "unchecked"
    return f"trade-only, checked {info.permissions_checked_at.isoformat(timespec='seconds')}"


def _check_lines(info: CredentialInfo) -> list[str]:
    lines = []
    if info.blocked_at is not None:
        lines.append(
            f"blocked:    {info.blocked_at.isoformat(timespec='seconds')}: {info.blocked_reason}"
        )
    if info.permissions:
        kinds = info.permissions.get("trade_kinds")
        names = ", ".join(str(k) for k in kinds) if isinstance(kinds, list) else ""
        lines.append(f"trades:     {names or 'nothing'}")
        restricted = info.permissions.get("ip_restricted")
        allow_list = (
            "not offered by the venue" if restricted is None else "yes" if restricted else "no"
        )
        lines.append(f"IP allow-list: {allow_list}")
    if info.key_expires_at is not None:
        lines.append(f"expires:    {info.key_expires_at.isoformat(timespec='seconds')}")
    return lines


# -- credentials -------------------------------------------------------------------------------


TradeOpt = Annotated[
    str | None,
    typer.Option(
        "--trade",
        help="What the key must be able to trade: spot, swap, or spot,swap (default: every kind "
        "tradeguard trades on that venue; binance: spot).",
    ),
]


def _needs(trade: str | None) -> frozenset[MarketKind] | None:
    if trade is None:
        return None
    try:
        return frozenset(MarketKind(part.strip()) for part in trade.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter("give spot, swap or spot,swap", param_hint="--trade") from None


@app.command("add")
def add(
    user: UserOpt,
    venue: Annotated[str, typer.Option("--venue", help="binance, bybit, okx, hyperliquid, ...")],
    name: Annotated[str, typer.Option("--name", help="A name for it, e.g. binance-main.")],
    stdin_json: StdinJson = False,
    trade: TradeOpt = None,
) -> None:
    """Store a venue credential, encrypted; asks for each secret field with echo off.

    Where tradeguard can ask the venue what a key may do (Binance, Bybit, Hyperliquid), it does
    so first, with the key only in memory, and refuses a key that can withdraw or transfer funds.
    """
    from tradeguard.venues.vetting import add_credential  # ccxt: ~1 s

    schema = schema_for(venue)
    needs = _needs(trade)
    settings = cli_settings()
    with opened_vault() as vault:
        vault.user(user)  # an unknown user fails before anyone types a secret
        _unlock_if_needed(vault, user)  # first: with --stdin-json the JSON is the rest of stdin
        with entered_fields(schema.fields, stdin_json) as fields:
            added = asyncio.run(
                add_credential(
                    vault, settings, user=user, venue=venue, name=name, fields=fields,
                    needs=needs,
                )
            )  # fmt: skip
    out.print(f"Stored {_describe(added.info)}.", markup=False)
    for warning in added.warnings:
        out.print(f"warning: {warning}", style="yellow", markup=False)


@app.command("list")
def list_credentials(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's.")] = None,
) -> None:
    """List credentials (masked public ids only)."""
    with opened_vault() as vault:
        rows = vault.credentials(user)
    table = Table(title="credentials")
    for column in ("user", "name", "venue", "public id", "id", "key check", "last used"):
        table.add_column(column, overflow="fold")
    for c in rows:
        used = c.last_used_at.isoformat(timespec="seconds") if c.last_used_at else "never"
        ids = ", ".join(c.display.values()) or "-"
        table.add_row(c.user_name, c.name, c.venue, ids, c.id, _key_status(c), used)
    out.print(table)


@app.command("show")
def show(
    credential: Annotated[str, typer.Argument(help="Credential id or name.")],
    user: Annotated[str | None, typer.Option("--user")] = None,
) -> None:
    """Show a credential's metadata (never a secret value)."""
    with opened_vault() as vault:
        info = vault.credential(credential, user)
    fields = schema_for(info.venue).names
    lines = [
        f"id:         {info.id}",
        f"user:       {info.user_name}",
        f"name:       {info.name}",
        f"venue:      {info.venue}",
        f"fields:     {', '.join(fields) or '(none)'} (encrypted)",
        *(f"{k + ':':<11} {v}" for k, v in info.display.items()),
        f"created:    {info.created_at.isoformat(timespec='seconds')}",
        f"rotated:    {info.rotated_at.isoformat(timespec='seconds') if info.rotated_at else '-'}",
        f"last used:  {info.last_used_at.isoformat(timespec='seconds') if info.last_used_at else 'never'}",  # noqa: E501
        f"key check:  {_key_status(info)}",
        *_check_lines(info),
    ]
    out.print("\n".join(lines), markup=False)


@app.command("remove")
def remove(
    credential: Annotated[str, typer.Argument(help="Credential id or name.")],
    user: Annotated[str | None, typer.Option("--user")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a credential (revoke the key at the venue too). Refused while a bot trades with it."""
    with opened_vault() as vault:
        info = vault.credential(credential, user)
        check_credential_unused(vault.engine, info.user_name, info.name)
        if not yes and not typer.confirm(f"Remove {_describe(info)}?"):
            raise typer.Exit(1)
        vault.remove_credential(info.id)
    out.print(f"Removed {_describe(info)}. Revoke the key at the venue too.", markup=False)


@app.command("rotate-credential")
def rotate_credential(
    credential: Annotated[str, typer.Argument(help="Credential id or name.")],
    user: Annotated[str | None, typer.Option("--user")] = None,
    stdin_json: StdinJson = False,
) -> None:
    """Replace a credential's values with a new key from the venue (same id, same bots)."""
    with opened_vault() as vault:
        info = vault.credential(credential, user)
        specs = schema_for(info.venue).fields
        _unlock_if_needed(vault, info.user_name)
        with entered_fields(specs, stdin_json) as fields:
            info = vault.rotate_credential(info.id, fields)
    out.print(f"Rotated {_describe(info)}. Revoke the old key at the venue.", markup=False)


@app.command("check-keys")
def check_keys(
    credential: Annotated[
        str | None, typer.Argument(help="One credential (id or name); default: all.")
    ] = None,
) -> None:
    """Ask each venue again what every stored key may do (run it daily, e.g. from a systemd
    timer). A key that can now withdraw or transfer is blocked from trading at once and an alert
    event is written; exit 1 when any key is blocked or could not be checked."""
    from tradeguard.venues.vetting import recheck_all, recheck_credential

    settings = cli_settings()
    with opened_vault() as vault:
        if credential is None:
            outcomes = asyncio.run(recheck_all(vault, settings))
        else:
            outcomes = [asyncio.run(recheck_credential(vault, settings, credential))]
    table = Table(title="venue key check")
    for column in ("credential", "venue", "result", "detail"):
        table.add_column(column, overflow="fold")
    failed = False
    for o in outcomes:
        c = o.credential
        if o.verdict is None:
            result, detail, failed = "[yellow]not checked[/]", o.error or "", True
        elif c.blocked:
            result, failed = "[bold red]BLOCKED[/]", True
            detail = c.blocked_reason or ""
        else:
            result, detail = "[green]trade-only[/]", "; ".join(o.verdict.warnings)
        table.add_row(f"{c.user_name}/{c.name}", c.venue, result, escape(detail))
    out.print(table)
    if failed:
        raise typer.Exit(1)


@app.command("block")
def block(
    credential: Annotated[str, typer.Argument(help="Credential id or name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit log.")],
) -> None:
    """Stop all trading with a credential now (an incident, a suspected leak)."""
    with opened_vault() as vault:
        info = vault.block_credential(
            vault.credential(credential).id, f"blocked by an operator: {reason}", actor="operator"
        )
    out.print(f"Blocked {_describe(info)}; unblock with `tradeguard vault unblock`.", markup=False)


@app.command("unblock")
def unblock(credential: Annotated[str, typer.Argument(help="Credential id or name.")]) -> None:
    """Allow trading with a blocked credential again, once a fresh check at the venue says the
    key is trade-only (venues that cannot be checked are unblocked as they are)."""
    from tradeguard.venues.vetting import checked_venues, unblock_credential

    settings = cli_settings()
    with opened_vault() as vault:
        info = vault.credential(credential)
        if info.venue in checked_venues():
            info = asyncio.run(unblock_credential(vault, settings, info.id))
        else:
            info = vault.unblock_credential(info.id)
    out.print(f"Unblocked {_describe(info)}.", markup=False)


@app.command("verify")
def verify(
    unlock: Annotated[
        list[str] | None,
        typer.Option("--unlock", help="Ask for this password-mode user's password and check "
                     "their credentials too (repeatable)."),
    ] = None,
) -> None:  # fmt: skip
    """Decrypt every credential in memory and report each; exit 1 on any integrity error."""
    with opened_vault() as vault:
        for name in unlock or []:
            _unlock_if_needed(vault, name)
        rows = vault.verify()
    table = Table(title="vault verify")
    for column in ("credential", "status", "detail"):
        table.add_column(column, overflow="fold")
    style = {"ok": "green", "locked": "yellow", "integrity error": "bold red"}
    for r in rows:
        table.add_row(
            f"{r.credential.user_name}/{r.credential.name}",
            f"[{style[r.status]}]{r.status}[/]",
            r.detail,
        )
    out.print(table)
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "locked", "integrity error")}
    out.print(
        f"{counts['ok']} ok, {counts['locked']} locked, {counts['integrity error']} integrity "
        "error",
        markup=False,
    )
    if counts["integrity error"]:
        raise typer.Exit(1)


@app.command("change-password")
def change_password(user: UserOpt) -> None:
    """Change a password-mode user's vault password (rewraps the data key only)."""
    with (
        opened_vault() as vault,
        ask_password(f"current vault password for {user}") as old,
        ask_new_password(user) as new,
    ):
        vault.change_password(user, old, new)
    out.print(f"Changed the vault password of {user}; no credential had to be re-entered.")


# -- keys --------------------------------------------------------------------------------------


@master.command("init")
def master_init(
    file: Annotated[Path, typer.Option("--file", help="Where to create the keyring (0600).")],
) -> None:
    """Create a master keyring file with one random key (version 1)."""
    cli_settings()
    init_keyring_file(file)
    out.print(
        f"Created {file} (mode 0600, version 1). Set TRADEGUARD_MASTER_KEY_FILE={file} and back "
        "it up apart from the database: without it, service-mode credentials cannot be read.",
        markup=False,
    )


@master.command("rotate")
def master_rotate() -> None:
    """Add a new primary version to the keyring file; then run `vault rewrap`."""
    cli_settings()
    path = keyring_file_path()
    version = rotate_keyring_file(path)
    with opened_vault() as vault:
        vault.emit(EventName.VAULT_MASTER_KEY_ROTATED, None, primary=version)
        pending = pending_rewrap(vault)
    out.print(
        f"Added master key version {version} to {path} as primary. {pending} data key(s) use "
        "older versions: run `tradeguard vault rewrap`.",
        markup=False,
    )


@master.command("retire")
def master_retire(
    below: Annotated[int, typer.Option("--below", help="Refuse all versions below this one.")],
) -> None:
    """Refuse master key versions below N (only once no data key uses them)."""
    with opened_vault() as vault:
        minimum = retire_below(vault, below)
    out.print(
        f"Master key versions below {minimum} are retired; you may delete them from the keyring.",
        markup=False,
    )


ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="The running server's URL (default: TRADEGUARD_PUBLIC_URL)."),
]


@app.command("unlock")
def unlock(
    user: Annotated[str, typer.Option("--user", help="Whose vault (a password-mode user).")],
    server: ServerOpt = None,
) -> None:
    """Open a password-mode user's vault in the running server (`tradeguard serve`), so their
    bots can trade until it locks itself (idle and absolute timeouts) or `vault lock`. Asks for
    the user's login password (and code), then their vault password."""
    from tradeguard.cli.server_session import api_error, logged_in  # httpx, only here

    settings = cli_settings()
    with (
        logged_in(user, server, settings.public_url) as client,
        ask_password(f"vault password for {user}") as secret,
        secret.reveal_text() as password,
    ):
        answer = client.post("/api/vault/unlock", json={"password": password})
    if answer.status_code != 200:
        raise api_error(answer)
    out.print(f"The vault of {user} is open in the server.", markup=False)


@app.command("lock")
def lock(
    user: Annotated[str, typer.Option("--user", help="Whose vault.")],
    server: ServerOpt = None,
) -> None:
    """Lock a user's vault in the running server now: their bots stop being able to trade."""
    from tradeguard.cli.server_session import api_error, logged_in

    settings = cli_settings()
    with logged_in(user, server, settings.public_url) as client:
        answer = client.post("/api/vault/lock")
    if answer.status_code != 200:
        raise api_error(answer)
    out.print(f"The vault of {user} is locked.", markup=False)


@app.command("rewrap")
def rewrap_command(
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
) -> None:
    """Rewrap every service-mode data key under the primary master key (resumable)."""
    with opened_vault() as vault:
        total = pending_rewrap(vault)
        columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=out, transient=False) as bar:
            task = bar.add_task("rewrapping data keys", total=total)
            result = rewrap(vault, batch_size=batch_size, progress=lambda n: bar.advance(task, n))
    out.print(
        f"Rewrapped {result.rewrapped} data key(s) under master key version {result.primary}.",
        markup=False,
    )
    if result.failed:
        out.print(
            f"{len(result.failed)} could not be unwrapped (restore them from a backup): "
            f"{', '.join(result.failed)}",
            markup=False,
        )
        raise typer.Exit(1)


@app.command("rotate-dek")
def rotate_dek_command(user: UserOpt) -> None:
    """Re-encrypt one user's credentials under a fresh data key."""
    with opened_vault() as vault:
        password = None
        if vault.user(user).vault_mode == "password":
            password = ask_password(f"vault password for {user}")
        try:
            version = rotate_dek(vault, user, password)
        finally:
            if password is not None:
                password.wipe()
    out.print(f"User {user} now has data key version {version}.", markup=False)
