"""`tradeguard db`: the database schema."""

from __future__ import annotations

import typer

from tradeguard.cli.console import out
from tradeguard.cli.settings import cli_settings
from tradeguard.ops.store import open_store

__all__ = ["app"]

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Create the database if needed and migrate it to this version's schema."""
    store = open_store(cli_settings())
    try:
        where = store.target.describe()
        if store.before.state == "current":
            out.print(f"{where} is already at schema revision {store.after.head}.", markup=False)
        else:
            was = store.before.current or "empty"
            out.print(
                f"{where} upgraded from {was} to schema revision {store.after.head}.", markup=False
            )
    finally:
        store.engine.dispose()
