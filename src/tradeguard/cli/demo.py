"""`tradeguard demo` (what `make demo` runs): a fresh installation on the embedded defaults.

Until the order path exists, the demo sets up a private data directory with its SQLite store, a
master keyring and an audit keyring, creates a demo user (vault in service mode) with a
paper-venue credential, checks that the vault decrypts it, verifies the audit log those steps
wrote, runs the deployment checks and says what the demo will show once the bots can trade. It
prints no trading output it has not produced.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.text import Text

from tradeguard.audit import AUDIT_KEY, load_audit_keys, verify
from tradeguard.cli.console import out
from tradeguard.cli.doctor import render_checks
from tradeguard.cli.open_vault import opened_vault
from tradeguard.cli.settings import cli_settings
from tradeguard.cli.store import open_store
from tradeguard.core.errors import DataDirError
from tradeguard.ops.doctor import run_checks
from tradeguard.store import create_engine
from tradeguard.vault.master import FILE_VARIABLE, init_keyring_file

__all__ = ["demo"]

_COMING = """\
Done above: a demo user (vault in service mode) with a paper
connection, its data key wrapped by the keyring in the demo directory;
every step is in the tamper-evident audit log, verified.
Once the order path lands, this demo will also:
 1. start the SMA-crossover example bot in its sandbox (no network,
    no keys);
 2. replay the bundled real ETH/BTC candles, accelerated, through the whole
    order path: bot -> gateway -> risk engine -> audit log -> paper venue
    -> fills back to the bot;
 3. show live orders, fills, PnL and circuit-breaker values, then a
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


def _demo_keys(data_dir: Path) -> Path:
    """Master and audit keyrings in the demo directory (doctor flags that in production)."""
    keyring = data_dir / "master-keyring.json"
    init_keyring_file(keyring)
    audit_keyring = data_dir / "audit-keyring.json"
    init_keyring_file(audit_keyring)
    # The demo is a process of its own: pointing the variables at its keyrings makes every
    # later step (the vault, the audit log, doctor) find them the way a real installation would.
    os.environ[FILE_VARIABLE] = str(keyring)
    os.environ[AUDIT_KEY.file_variable] = str(audit_keyring)
    return keyring


def _demo_vault(data_dir: Path, overrides: dict[str, object]) -> None:
    """A demo user in service mode with a paper credential, every step in the audit log."""
    keyring = _demo_keys(data_dir)
    with opened_vault(**overrides) as vault:
        vault.add_user("demo", "service")
        info = vault.add_credential("demo", "paper", "paper-main", {})
        rows = vault.verify()
    ok = sum(r.status == "ok" for r in rows)
    out.print(
        f"Vault: keyring {keyring} (0600), user demo (service mode), credential "
        f"{info.name} on {info.venue}; vault verify: {ok}/{len(rows)} ok",
        markup=False,
    )


def _demo_audit(overrides: dict[str, object]) -> None:
    """`audit verify` against the checkpoint file the steps above wrote."""
    settings = cli_settings(**overrides)  # again: the audit key variable is set now
    engine = create_engine(settings.database())
    try:
        report = verify(engine, load_audit_keys(settings), against=settings.checkpoint_file())
    finally:
        engine.dispose()
    state = "intact" if report.ok else f"DAMAGED ({report.findings[0].message})"
    out.print(
        f"Audit log: {report.entries} entries, {report.heads} signed tree head(s), "
        f"checkpoints in {settings.checkpoint_file()}; audit verify: {state}",
        markup=False,
    )


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where to put the demo installation (default: a new temporary dir)."),
    ] = None,
) -> None:
    """Set up a fresh demo installation on SQLite and the paper venue, and check it."""
    fresh = _fresh_dir(data_dir)
    overrides = {"data_dir": fresh, "demo": True, "database_url": None}
    settings = cli_settings(**overrides)
    store = open_store(settings)
    store.engine.dispose()
    out.print(f"Demo installation: {settings.data_dir}", markup=False)
    out.print(f"Database: {store.target.describe()}, schema {store.after.head}", markup=False)
    _demo_vault(settings.data_dir, overrides)
    _demo_audit(overrides)
    checks = run_checks(overrides=overrides)
    render_checks(checks)
    out.print(
        Panel(Text(_COMING), title="what `make demo` will show", expand=False), soft_wrap=False
    )
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)
