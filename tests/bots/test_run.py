"""A bot end to end through the real commands: `bots create` copies it in and builds its venv,
`bots run` starts it in its sandbox behind its gateway and replays candles through the whole
order path (risk engine, durable audit intent, paper venue, fills back to the bot); the audit
log records every order and verifies afterwards. A bot that keeps crashing is halted."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from tests.conftest import CliRunner, Run

from tradeguard.marketdata.sample import sample_path

CANDLES = 90  # enough for the test bot's two trades; every candle costs a round trip


@pytest.fixture
def home(bot_cli: CliRunner) -> CliRunner:
    bot_cli.env["TRADEGUARD_BOT_CRASH_LIMIT"] = "2"
    ok(bot_cli, "users", "add", "alice", "--vault-mode", "service")
    return bot_cli


def ok(cli: CliRunner, *args: str) -> Run:
    run = cli(*args)
    assert run.code == 0, f"{args}: exit {run.code}\n{run.output}"
    return run


def replay_file(tmp_path: Path) -> Path:
    lines = sample_path("ETH_BTC-5m.csv").read_text().splitlines()
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text("\n".join(lines[: CANDLES + 1]) + "\n")
    return path


BOT_PY = """
from decimal import Decimal
from tradeguard.sdk import Bot

class Twice(Bot):
    async def on_start(self):
        self.seen = 0
        self.log.info("connection %r", self.connection())

    async def on_candle(self, candle):
        self.seen += 1
        if self.seen == 40:
            order = await self.connection().buy(candle.symbol, Decimal("0.5"))
            self.state["buy"] = order.client_order_id
        if self.seen == 70:
            await self.connection().sell(candle.symbol, Decimal("0.5"))

    async def on_fill(self, fill):
        self.state["fills"] = self.state.get("fills", []) + [[fill.side, str(fill.amount)]]

    async def on_stop(self):
        self.state["seen"] = self.seen
"""

BOT_TOML = """
name = "twice"
connection = "paper"
symbols = ["ETH/BTC"]
timeframe = "5m"
mode = "paper"

[risk]
capital = "1"
max_order_notional = "0.5"
"""


def bot_folder(tmp_path: Path, body: str = BOT_PY) -> Path:
    folder = tmp_path / "twice"
    folder.mkdir()
    (folder / "bot.py").write_text(body)
    (folder / "bot.toml").write_text(BOT_TOML)
    return folder


def audit_events(tmp_path: Path) -> list[str]:
    with closing(sqlite3.connect(tmp_path / "data" / "tradeguard.db")) as conn:
        return [row[0] for row in conn.execute("SELECT event FROM audit_log ORDER BY seq")]


def state_of(tmp_path: Path) -> dict[str, object]:
    [bot_dir] = (tmp_path / "data" / "bots").iterdir()
    state: dict[str, object] = json.loads((bot_dir / "state" / "state.json").read_text())
    return state


def test_a_bot_trades_through_the_whole_order_path(home: CliRunner, tmp_path: Path) -> None:
    created = ok(home, "bots", "create", "--from", str(bot_folder(tmp_path)), "--name", "twice")
    assert "created bot twice" in created.output
    ok(home, "bots", "run", "twice", "--replay", str(replay_file(tmp_path)))

    state = state_of(tmp_path)
    assert state["seen"] == CANDLES  # every candle reached the bot, in lockstep
    assert state["fills"] == [["buy", "0.5"], ["sell", "0.5"]]
    assert str(state["buy"]).startswith("0x")  # the gateway chose the client order id
    events = audit_events(tmp_path)
    assert events.count("order.intent") == 2
    assert {"bot.created", "bot.started", "bot.stopped"} <= set(events)
    assert events.index("bot.started") < events.index("order.intent")
    assert "audit log intact" in ok(home, "audit", "verify").output

    listed = ok(home, "bots", "list").output
    assert "twice" in listed
    assert "stopped" in listed
    status = ok(home, "bots", "status", "twice").output
    assert "ACTIVE" in status
    log = ok(home, "bots", "logs", "twice").output
    assert "venue='paper'" in log  # the masked connection, as the bot printed it


def test_a_crash_loop_halts_the_bot(home: CliRunner, tmp_path: Path) -> None:
    crashing = BOT_PY.replace('self.log.info("connection %r", self.connection())', "1 / 0")
    ok(home, "bots", "create", "--from", str(bot_folder(tmp_path, crashing)))
    run = home("bots", "run", "twice", "--replay", str(replay_file(tmp_path)))
    assert run.code == 1

    events = audit_events(tmp_path)
    assert events.count("bot.crashed") == 2  # TRADEGUARD_BOT_CRASH_LIMIT=2
    assert "bot.crash_loop" in events
    assert "risk.state.changed" in events
    assert "HALTED" in ok(home, "risk", "status").output
    assert "ZeroDivisionError" in ok(home, "bots", "logs", "twice").output


def test_a_bot_that_crashes_on_a_candle_is_restarted_and_the_replay_goes_on(
    home: CliRunner, tmp_path: Path
) -> None:
    once = BOT_PY.replace(
        "        self.seen += 1\n",
        "        self.seen += 1\n"
        "        if self.seen == 20 and not self.state.get('crashed'):\n"
        "            self.state['crashed'] = True\n"
        "            raise RuntimeError('strategy bug')\n",
    )
    ok(home, "bots", "create", "--from", str(bot_folder(tmp_path, once)))
    ok(home, "bots", "run", "twice", "--replay", str(replay_file(tmp_path)))

    state = state_of(tmp_path)
    assert state["crashed"] is True
    # restarted with a fresh count after candle 20, it saw the rest of the replay
    assert state["seen"] == CANDLES - 20
    assert audit_events(tmp_path).count("bot.crashed") == 1
    assert "strategy bug" in ok(home, "bots", "logs", "twice").output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: (f / "bot.toml").write_text('name = "x"\n'), "`timeframe`"),
        (lambda f: (f / "bot.py").unlink(), "has no bot.py"),
        (lambda f: (f / "bot.toml").write_text(BOT_TOML.replace("paper", "live", 2)), "promote"),
        (lambda f: (f / "requirements.txt").write_text("reqeusts\n"), "typosquat"),
    ],
)
def test_bad_bot_folders_are_refused_and_leave_nothing(
    home: CliRunner, tmp_path: Path, change: object, message: str
) -> None:
    folder = bot_folder(tmp_path)
    change(folder)  # type: ignore[operator]
    run = home("bots", "create", "--from", str(folder))
    assert run.code == 2, run.output
    assert message in run.output
    assert not list((tmp_path / "data" / "bots").glob("*"))
    assert "no bots yet" in ok(home, "bots", "list").output
