"""Entry point of the `tradeguard` command.

Before any command runs: the umask becomes 077 (every file we create is private even if a code
path forgets to say so), core dumps are switched off (a dump would hold every secret in
memory), log redaction is installed, and logging goes to stderr. A
`TradeguardError` prints one line (`error: what failed; what to do`) and exits with its code
(2 for bad input or configuration). Anything else is a bug: the traceback is printed with
secrets scrubbed from its locals and text, and the exit code is 1. Typer's own pretty
tracebacks are off because they print every local variable, secrets included.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Annotated

import typer

import tradeguard
from tradeguard.cli import audit, backtest, bots, data, db, demo, doctor, risk, serve, users, vault
from tradeguard.cli.console import err, out
from tradeguard.cli.logs import configure_logging
from tradeguard.core.errors import TradeguardError
from tradeguard.secrets import redact

__all__ = ["app", "main"]

app = typer.Typer(
    name="tradeguard",
    help="Self-hosted, non-custodial platform for running trading bots safely.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(vault.app, name="vault")
app.add_typer(audit.app, name="audit")
app.add_typer(data.app, name="data")
app.add_typer(risk.risk_app, name="risk")
app.add_typer(bots.bots_app, name="bots")
app.command("doctor")(doctor.doctor)
app.command("demo")(demo.demo)
app.command("backtest")(backtest.backtest)
app.command("serve")(serve.serve)


def _version(value: bool) -> None:
    if value:
        out.print(f"tradeguard {tradeguard.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """tradeguard: trading bots that never hold your keys."""


def _harden_process() -> None:
    os.umask(0o077)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str] | None = None) -> None:
    _harden_process()
    redact.install()
    configure_logging("INFO")
    try:
        app(args=argv, prog_name="tradeguard")
    except TradeguardError as e:
        err.print(f"error: {e.message}", style="red", markup=False)
        sys.exit(e.exit_code)
    except Exception as e:  # noqa: BLE001 - the last resort: report the bug without secrets
        err.print(redact.format_exception(e, show_locals=True), markup=False)
        err.print(
            "tradeguard stopped on an unexpected error (a bug). The report above has secrets "
            "removed; please attach it to an issue.",
            style="red",
            markup=False,
        )
        sys.exit(1)
