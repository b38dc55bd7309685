"""Load settings for a command and apply the log level they name."""

from __future__ import annotations

from typing import Any

from tradeguard.cli.logs import configure_logging
from tradeguard.config import Settings, load_settings

__all__ = ["cli_settings"]


def cli_settings(**overrides: Any) -> Settings:
    settings = load_settings(**overrides)
    configure_logging(settings.log_level)
    return settings
