"""Starting and stopping a bot's detached supervisor (tradeguard.bots.control), through the real
`bots start|status|stop` commands, and the refusals that happen before anything is spawned."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.bots.test_run import audit_events, bot_folder, ok
from tests.conftest import CliRunner

from tradeguard.bots import control
from tradeguard.bots.registry import BotInfo
from tradeguard.config import Settings
from tradeguard.core.events import MemorySink


def test_start_status_stop_through_the_commands(bot_cli: CliRunner, tmp_path: Path) -> None:
    ok(bot_cli, "users", "add", "alice", "--vault-mode", "service")
    ok(bot_cli, "bots", "create", "--from", str(bot_folder(tmp_path)), "--name", "twice")
    # speed 1: candles come in real time, so the bot is still running when it is stopped
    started = ok(bot_cli, "bots", "start", "twice", "--replay", "sample:ETH_BTC-5m.csv",
                 "--speed", "1")  # fmt: skip
    assert "supervisor pid" in started.output
    again = bot_cli("bots", "start", "twice", "--replay", "sample:ETH_BTC-5m.csv")
    assert again.code == 2
    assert "bot twice is running; stop it first" in again.stderr
    deadline = time.monotonic() + 60
    while "running" not in ok(bot_cli, "bots", "status", "twice").output:
        assert time.monotonic() < deadline, "the supervisor never reported running"
        time.sleep(0.5)
    assert "bot twice stopped." in ok(bot_cli, "bots", "stop", "twice").output
    assert "stopped" in ok(bot_cli, "bots", "status", "twice").output
    assert "is not running" in ok(bot_cli, "bots", "stop", "twice").output
    events = audit_events(tmp_path)
    for name in ("bot.start.requested", "bot.started", "bot.stop.requested", "bot.stopped"):
        assert name in events, name
    assert events.index("bot.start.requested") < events.index("bot.started")


def _info(connection: str) -> BotInfo:
    return BotInfo("0" * 8, "twice", "alice", connection, "paper", "/src", datetime.now(UTC))


def test_a_live_connection_is_refused_before_anything_runs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", runtime_dir=tmp_path / "run")
    events = MemorySink()
    with pytest.raises(control.BotConflict, match="does not host live bots yet"):
        control.start(
            settings, _info("binance-main"), ["sample:ETH_BTC-5m.csv"], 0, events=events,
            actor="user:1",
        )  # fmt: skip
    assert events.events == []
    assert not (tmp_path / "data").exists()


def test_a_stop_of_a_bot_never_started_does_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", runtime_dir=tmp_path / "run")
    events = MemorySink()
    assert control.stop(settings, _info("paper"), events=events, actor="user:1") is False
    assert control.read_status(settings, _info("paper")) == {"state": "never run"}
    assert events.events == []


def test_a_recycled_pid_is_not_the_supervisor(tmp_path: Path) -> None:
    assert not control.supervisor_alive(1, "twice")  # pid 1 is init, not `bots run twice`
    assert not control.supervisor_alive(True, "twice")
    assert not control.supervisor_alive("123", "twice")


def test_tail_log_reads_only_the_end(tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    assert control.tail_log(log, 10) == []
    log.write_text("".join(f"line {n}\n" for n in range(10_000)))
    assert control.tail_log(log, 3) == ["line 9997", "line 9998", "line 9999"]
    window = control.tail_log(log, 10_000, max_bytes=100)
    assert window[-1] == "line 9999"
    assert all(line.startswith("line ") for line in window)  # no line cut in half
    assert len(window) < 15
    log.write_bytes(b"caf\xc3\xa9 \xff\n")
    assert control.tail_log(log, 1) == ["café \ufffd"]
