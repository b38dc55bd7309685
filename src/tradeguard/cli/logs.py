"""Logging for command-line runs: one stderr handler on the root logger, records redacted by
`tradeguard.secrets.redact` (installed by `main` before anything logs)."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_tradeguard", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._tradeguard = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # Alembic narrates every migration context at INFO; keep that for debugging sessions.
    logging.getLogger("alembic").setLevel(level if level == "DEBUG" else "WARNING")
    # ccxt logs every request and reply, headers and bodies, at DEBUG: signed requests, key ids
    # and account addresses. The redactor would catch the registered secrets, but a venue's
    # reply is not ours to log; keep ccxt at WARNING even when debugging tradeguard.
    logging.getLogger("ccxt").setLevel("WARNING")
    logging.captureWarnings(True)
