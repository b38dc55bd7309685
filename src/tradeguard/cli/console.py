"""Consoles for output and errors. Markup is off: text we print may contain `[REDACTED:...]`
markers and user input, which rich must show as written, not interpret as styles."""

from __future__ import annotations

from rich.console import Console

__all__ = ["err", "out"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
