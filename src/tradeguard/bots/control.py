"""Starting, stopping and watching a bot's supervisor: the one implementation behind
`tradeguard bots start|stop|status|logs` and the HTTP API.

A started bot is a detached `tradeguard bots run NAME --replay ...` process in its own session
(it outlives whoever started it). Its pid is in `<bot dir>/status.json`, written first by
`start` (state `starting`, so a stop right after a start finds it) and then every few seconds
by the runtime. A pid counts as the bot's supervisor only while `/proc/PID/cmdline` still says
`run NAME`: a recycled pid belongs to someone else and is never signalled.

Until `tradeguard serve` hosts bots, a start drives a paper connection from replayed candles;
a bot on a live connection is refused with a message saying so, before anything is spawned.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tradeguard.bots.registry import BotInfo
from tradeguard.bots.runtime import write_status
from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import DomainEvent, EventName, EventSink
from tradeguard.marketdata.candles import Candle
from tradeguard.marketdata.files import parse_file_name, read_candles
from tradeguard.marketdata.sample import sample_path

__all__ = [
    "BotConflict",
    "is_running",
    "read_status",
    "replay_candles",
    "start",
    "stop",
    "supervisor_alive",
    "tail_log",
]

SAMPLE = "sample:"
STOP_WAIT_S = 15.0
MAX_LOG_BYTES = 1024 * 1024  # a tail reads at most this much of the end of a log


class BotConflict(ConfigError):
    """The bot is not in a state for this: running already, or not startable here."""


def read_status(settings: Settings, info: BotInfo) -> dict[str, Any]:
    """The runtime's last status.json, with a dead supervisor called what it is."""
    path = info.paths(settings).root / "status.json"
    try:
        status: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {"state": "never run"}
    live = status.get("state") in ("running", "starting")
    if live and not supervisor_alive(status.get("supervisor_pid"), info.name):
        status["state"] = "dead (the supervisor is gone)"
    return status


def supervisor_alive(pid: object, name: str) -> bool:
    """Whether `pid` is a `bots run NAME` supervisor (a recycled pid is someone else)."""
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"run" in argv and name.encode() in argv


def is_running(settings: Settings, info: BotInfo) -> bool:
    return supervisor_alive(read_status(settings, info).get("supervisor_pid"), info.name)


def replay_path(spec: str) -> Path:
    """`sample:NAME` is a bundled candle file; anything else a path on this host."""
    return sample_path(spec.removeprefix(SAMPLE)) if spec.startswith(SAMPLE) else Path(spec)


def replay_candles(specs: Sequence[str]) -> dict[str, list[Candle]]:
    """The candles to replay, by symbol (each file named SYMBOL-TIMEFRAME.csv)."""
    if not specs:
        raise ConfigError("say what to replay with --replay FILE (or sample:ETH_BTC-5m.csv)")
    candles: dict[str, list[Candle]] = {}
    for spec in specs:
        path = replay_path(spec)
        symbol, _timeframe = parse_file_name(path.name)
        if symbol is None:
            raise ConfigError(
                f"{path.name}: name the file SYMBOL-TIMEFRAME.csv, e.g. ETH_BTC-5m.csv"
            )
        candles[symbol] = list(read_candles(path).candles)
    return candles


def _check_startable(settings: Settings, info: BotInfo, specs: Sequence[str]) -> None:
    """Every refusal before a process is spawned: a detached process can only log its error."""
    if info.connection != "paper":
        raise BotConflict(
            f"bot {info.name} trades on the live connection {info.connection}; tradeguard "
            "does not host live bots yet (a start replays candles on paper): create a paper "
            "copy of the bot to run it"
        )
    if is_running(settings, info):
        raise BotConflict(f"bot {info.name} is running; stop it first")
    missing = set(info.manifest(settings).symbols) - set(replay_candles(specs))
    if missing:
        raise ConfigError(
            f"bot {info.name} trades {', '.join(sorted(missing))}: add candles for it to the replay"
        )


def _emit(
    events: EventSink, name: EventName, info: BotInfo, actor: str, ip: str | None, **details: Any
) -> None:
    at = datetime.now(UTC)
    events.emit(DomainEvent(name, at, actor, info.id, {"bot": info.name, **details}, ip))


def _child_env(settings: Settings) -> dict[str, str]:
    """The caller's environment, with the directories of *these* settings: the supervisor
    reads its settings from the environment and must find the same bot and database."""
    return {
        **os.environ,
        "TRADEGUARD_DATA_DIR": str(settings.data_dir),
        "TRADEGUARD_RUNTIME_DIR": str(settings.runtime_dir),
    }


def start(
    settings: Settings,
    info: BotInfo,
    replay: Sequence[str],
    speed: float,
    *,
    events: EventSink,
    actor: str,
    ip: str | None = None,
) -> int:
    """Start the bot's supervisor detached; its pid. `BotConflict` if it cannot start."""
    _check_startable(settings, info, replay)
    paths = info.paths(settings)
    args = [sys.executable, "-m", "tradeguard", "bots", "run", info.name, "--speed", str(speed)]
    for spec in replay:
        args += ["--replay", spec]
    (paths.root / "run.json").write_text(json.dumps({"replay": list(replay), "speed": speed}))
    log = os.open(paths.logs / "supervisor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        child = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=_child_env(settings),
        )
    finally:
        os.close(log)
    write_status(
        paths.root / "status.json",
        {"name": info.name, "id": info.id, "supervisor_pid": child.pid, "state": "starting"},
    )
    _emit(events, EventName.BOT_START_REQUESTED, info, actor, ip, supervisor_pid=child.pid)
    return child.pid


def stop(
    settings: Settings,
    info: BotInfo,
    *,
    events: EventSink,
    actor: str,
    ip: str | None = None,
    wait_s: float = STOP_WAIT_S,
) -> bool:
    """SIGTERM to the supervisor (the bot's on_stop runs), then wait for it to end. False if
    it was not running; `BotConflict` if it did not stop in time."""
    pid = read_status(settings, info).get("supervisor_pid")
    if not supervisor_alive(pid, info.name):
        return False
    assert isinstance(pid, int)  # noqa: S101 - supervisor_alive checked it
    os.kill(pid, signal.SIGTERM)
    _emit(events, EventName.BOT_STOP_REQUESTED, info, actor, ip, supervisor_pid=pid)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not supervisor_alive(pid, info.name):
            return True
        time.sleep(0.1)
    raise BotConflict(
        f"bot {info.name}'s supervisor (pid {pid}) did not stop in {wait_s:.0f} s; kill {pid}"
    )


def last_run(settings: Settings, info: BotInfo) -> tuple[list[str], float]:
    """The replay and speed of the last start (for a restart)."""
    try:
        last = json.loads((info.paths(settings).root / "run.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"bot {info.name} was never started with `bots start`") from None
    return [str(s) for s in last["replay"]], float(last["speed"])


def tail_log(path: Path, lines: int, max_bytes: int = MAX_LOG_BYTES) -> list[str]:
    """The last `lines` lines of a log, reading at most `max_bytes` from its end (a log can be
    large; a request for its tail must not read all of it). No log yet: no lines."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - max_bytes))
            data = log.read(max_bytes)
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    if len(data) == max_bytes and size > max_bytes:
        text = text[1:]  # the first line was cut by the window
    return text[-lines:] if lines > 0 else []
