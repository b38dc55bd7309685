"""`bot.toml`: what a bot is called, where it trades, what it watches and its risk limits.

    name = "sma-eth"
    connection = "paper"          # a stored credential's name, or "paper"
    symbols = ["ETH/BTC"]
    timeframe = "5m"
    mode = "paper"                # paper | live (live only through `bots promote`)

    [params]                      # anything the strategy reads as self.params
    fast = 10

    [risk]                        # tradeguard.risk.limits.bot_limits_from
    capital = "1"

Every problem is a `ConfigError` that names the file and the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeguard.core.errors import ConfigError
from tradeguard.marketdata.candles import Timeframe
from tradeguard.risk.limits import BotLimits, bot_limits_from

__all__ = ["NAME_RULE", "Manifest", "check_bot_name", "load_manifest"]

NAME_RULE = "1 to 48 lowercase letters, digits and dashes, starting with a letter or digit"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
_KEYS = {"name", "connection", "symbols", "timeframe", "mode", "params", "risk"}
_MAX_BYTES = 64 * 1024


def check_bot_name(name: str, where: str = "bot name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: {name!r:.60} is not a bot name ({NAME_RULE})")
    return name


@dataclass(frozen=True)
class Manifest:
    name: str
    connection: str
    symbols: tuple[str, ...]
    timeframe: str
    mode: str
    limits: BotLimits
    params: Mapping[str, Any] = field(default_factory=dict)
    risk: Mapping[str, Any] = field(default_factory=dict)  # the [risk] table as written


def _string(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: `{key}` must be a non-empty string")
    return value


def _symbols(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    symbols = raw.get("symbols")
    if (
        not isinstance(symbols, list)
        or not symbols
        or not all(isinstance(s, str) and 1 <= len(s) <= 64 for s in symbols)
    ):
        raise ConfigError(f'{where}: `symbols` must be a list of market symbols, e.g. ["ETH/BTC"]')
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"{where}: `symbols` lists a symbol twice")
    return tuple(symbols)


def parse_manifest(raw: Mapping[str, Any], where: str) -> Manifest:
    if unknown := set(raw) - _KEYS:
        raise ConfigError(
            f"{where}: unknown key {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}"
        )
    name = check_bot_name(_string(raw, "name", where), f"{where}: `name`")
    timeframe = _string(raw, "timeframe", where)
    try:
        Timeframe.parse(timeframe)
    except ValueError as error:
        raise ConfigError(f"{where}: `timeframe`: {error}") from None
    mode = _string(raw, "mode", where)
    if mode not in ("paper", "live"):
        raise ConfigError(f"{where}: `mode` is paper or live, not {mode!r:.20}")
    params = raw.get("params", {})
    risk = raw.get("risk", {})
    for key, table in (("params", params), ("risk", risk)):
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{key}] must be a table")
    symbols = _symbols(raw, where)
    limits = bot_limits_from({"symbols": list(symbols), **risk}, f"{where} [risk]")
    return Manifest(
        name, _string(raw, "connection", where), symbols, timeframe, mode, limits, params, risk
    )


def load_manifest(folder: Path) -> Manifest:
    """The bot.toml in `folder`, checked."""
    path = folder / "bot.toml"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{folder} has no bot.toml; a bot folder needs bot.py and bot.toml"
        ) from None
    if len(data) > _MAX_BYTES:
        raise ConfigError(f"{path} is over {_MAX_BYTES} bytes; a bot.toml is a few lines")
    try:
        raw = tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return parse_manifest(raw, str(path))
