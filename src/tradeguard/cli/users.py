"""`tradeguard users`: the people whose credentials the vault holds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tradeguard.cli.console import out
from tradeguard.cli.open_vault import opened_vault
from tradeguard.cli.prompts import ask_new_password
from tradeguard.vault.users import all_users, check_name

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
