"""`tradeguard demo` (what `make demo` runs): a fresh installation on the embedded defaults.

Until the order path exists, the demo sets up a private data directory with its SQLite store,
runs the deployment checks on it and says what the demo will show once the bots can trade. It
prints no trading output it has not produced.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.text import Text

from tradeguard.cli.console import out
from tradeguard.cli.doctor import render_checks
from tradeguard.cli.settings import cli_settings
from tradeguard.cli.store import open_store
from tradeguard.core.errors import DataDirError
from tradeguard.ops.doctor import run_checks

__all__ = ["demo"]

_COMING = """\
Once the order path lands, this demo will, in this same directory:
 1. create a demo user (vault in service mode) and a paper connection;
 2. start the SMA-crossover example bot in its sandbox (no network,
    no keys);
 3. replay bundled real BTC/USDT candles, accelerated, through the whole
    order path: bot -> gateway -> risk engine -> audit log -> paper venue
    -> fills back to the bot;
 4. show live orders, fills, PnL and circuit-breaker values, then a
    summary, the equity chart and `tradeguard audit verify` passing.
Today it sets up the store and checks the deployment; nothing above is
simulated."""


def _fresh_dir(data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="tradeguard-demo-"))  # created 0700
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DataDirError(
            f"the demo needs a fresh data directory, and {data_dir} is not empty; pass a new "
            "path to --data-dir or leave it out"
        )
    return data_dir


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where to put the demo installation (default: a new temporary dir)."),
    ] = None,
) -> None:
    """Set up a fresh demo installation on SQLite and the paper venue, and check it."""
    overrides = {"data_dir": _fresh_dir(data_dir), "demo": True, "database_url": None}
    settings = cli_settings(**overrides)
    store = open_store(settings)
    store.engine.dispose()
    out.print(f"Demo installation: {settings.data_dir}", markup=False)
    out.print(f"Database: {store.target.describe()}, schema {store.after.head}", markup=False)
    checks = run_checks(overrides=overrides)
    render_checks(checks)
    out.print(
        Panel(Text(_COMING), title="what `make demo` will show", expand=False), soft_wrap=False
    )
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)
