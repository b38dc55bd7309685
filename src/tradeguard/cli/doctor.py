"""`tradeguard doctor`: the deployment checklist as a table; exit code 1 on any fail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tradeguard.cli.console import out
from tradeguard.ops.doctor import Check, run_checks

__all__ = ["doctor", "render_checks"]

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def render_checks(checks: Sequence[Check]) -> None:
    table = Table(title="tradeguard doctor", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("details / how to fix", overflow="fold")
    for check in checks:
        table.add_row(
            Text(check.name), Text(check.status, style=_STYLE[check.status]), Text(check.detail)
        )
    out.print(table)
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail")}
    out.print(f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail", markup=False)


def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the checks as JSON, for scripts and monitoring.")
    ] = False,
) -> None:
    """Check this deployment against the security checklist (read-only)."""
    checks = run_checks()
    if as_json:
        out.print_json(data=[asdict(c) for c in checks])
    else:
        render_checks(checks)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)
