"""`tradeguard demo`, which `make demo` runs: a fresh installation, then the SMA example bot
trading real candles through the whole order path (shortened with --candles), a summary, the
equity chart and `audit verify`. Nothing in it is faked, so the tests read the results back from
the database and the files it wrote."""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from tests.conftest import CliRunner, Run

import tradeguard
from tradeguard.bots.sandbox import Support, probe
from tradeguard.cli import demo as demo_module
from tradeguard.cli.console import out
from tradeguard.config import load_settings
from tradeguard.core.errors import ConfigError

# The first 300 candles of the sample: the SMA bot (10/30) buys and sells three times in them.
CANDLES = "300"
FEW = "40"  # set-up only: too few closes for the bot's slow average, so it does not trade


@pytest.fixture
def cli(cli: CliRunner) -> Iterator[CliRunner]:
    """The runner, with the bot's runtime dir (its gateway socket) short and private."""
    runtime = Path(tempfile.mkdtemp(dir="/tmp"))  # a socket path has 107 bytes at most
    cli.env["TRADEGUARD_RUNTIME_DIR"] = str(runtime)
    yield cli
    shutil.rmtree(runtime, ignore_errors=True)


def audit_events(data: Path) -> list[str]:
    with closing(sqlite3.connect(data / "tradeguard.db")) as conn:
        return [row[0] for row in conn.execute("SELECT event FROM audit_log ORDER BY seq")]


def summary_count(run: Run, label: str) -> int:
    found = re.search(rf"(\d+) \({re.escape(label)}", run.stdout)
    assert found, f"no {label!r} in the summary:\n{run.stdout}"
    return int(found.group(1))


def test_the_demo_trades_real_candles_through_the_whole_order_path(
    cli: CliRunner, tmp_path: Path
) -> None:
    data = tmp_path / "demo"
    run = cli("demo", "--data-dir", str(data), "--candles", CANDLES)
    assert run.code == 0, run.output

    # the set-up: a fresh private installation, checked
    assert f"Demo installation: {data}" in run.stdout
    assert "user demo (service mode), credential paper-main on paper" in run.stdout
    assert "vault verify: 1/1 ok" in run.stdout
    assert "database schema" in run.stdout  # doctor's checks
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "tradeguard.db").stat().st_mode & 0o777 == 0o600
    assert (data / "master-keyring.json").stat().st_mode & 0o777 == 0o600

    # the bot ran in its sandbox where this host has one, and the output says which
    if probe().ok:
        assert "Sandbox: available" in run.stdout
        assert "bot process in its sandbox" in run.stdout
    else:
        assert "Sandbox: NOT AVAILABLE on this host" in run.stdout
        assert "UNSANDBOXED (paper only)" in run.stdout
    assert f"Replay: {CANDLES} real ETH/BTC 5m candles" in run.stdout

    # the summary, from the risk engine's trades, the paper venue and the audit log
    assert "Demo summary" in run.stdout
    assert f"{CANDLES} of {CANDLES} candles" in run.stdout
    for label in ("closed trades", "win rate", "profit factor", "net PnL", "max drawdown"):
        assert label in run.stdout
    orders = summary_count(run, "order.intent entries in the audit log")
    fills = summary_count(run, "paper venue)")
    assert orders >= 1
    assert fills >= 1
    events = audit_events(data)
    assert events.count("order.intent") == orders  # each order's intent is in the log
    assert {"bot.created", "bot.started", "bot.stopped"} <= set(events)
    assert events.index("bot.started") < events.index("order.intent")

    # the equity chart and curve: one point per candle
    png, csv = data / "demo-equity.png", data / "demo-equity.csv"
    assert re.search(rf"equity chart\s+│ {re.escape(str(png))}", run.stdout)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert png.stat().st_mode & 0o777 == 0o600
    rows = csv.read_text().splitlines()
    assert rows[0] == "close_time_utc,close_ms,equity_btc"
    assert len(rows) == 1 + int(CANDLES)

    # audit verify, in the demo and again through the real command afterwards
    assert "audit verify: intact" in run.stdout
    env = {
        "TRADEGUARD_DATA_DIR": str(data),
        "TRADEGUARD_AUDIT_KEY_FILE": str(data / "audit-keyring.json"),
    }
    verified = cli("audit", "verify", env=env)
    assert verified.code == 0, verified.output
    assert "audit log intact" in verified.stdout
    assert "Demo done" in run.stdout
    assert not any(Path(cli.env["TRADEGUARD_RUNTIME_DIR"]).iterdir())  # nothing left behind


def test_a_bot_that_crashes_fails_the_demo(cli: CliRunner, tmp_path: Path) -> None:
    bot = tmp_path / "crashing"
    shutil.copytree(Path(tradeguard.__file__).resolve().parents[2] / "examples" / "sma_cross", bot)
    (bot / "bot.py").write_text(
        "from tradeguard.sdk import Bot\n\n"
        "class Crashing(Bot):\n"
        "    async def on_start(self):\n"
        "        raise RuntimeError('strategy bug')\n"
    )
    data = tmp_path / "demo"
    env = {"TRADEGUARD_BOT_CRASH_LIMIT": "1"}
    run = cli("demo", "--data-dir", str(data), "--bot", str(bot), "--candles", FEW, env=env)
    assert run.code == 1, run.output
    assert "Demo FAILED: the bot crashed" in run.stdout
    assert "audit verify: intact" in run.stdout  # the crash is in the log, which verifies
    assert "bot.crash_loop" in audit_events(data)


def test_demo_uses_a_new_temporary_dir_and_ignores_a_configured_database(
    cli: CliRunner,
) -> None:
    env = {"TRADEGUARD_DATABASE_URL": "postgresql://nobody@192.0.2.1/prod"}
    run = cli("demo", "--candles", FEW, env=env)
    assert run.code == 0, run.output
    line = next(x for x in run.stdout.splitlines() if x.startswith("Demo installation: "))
    path = Path(line.removeprefix("Demo installation: "))
    try:
        assert path.name.startswith("tradeguard-demo-")
        assert (path / "tradeguard.db").exists()
        assert f"{FEW} of {FEW} candles" in run.stdout
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_demo_refuses_a_directory_that_is_not_fresh(cli: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "used"
    data.mkdir(mode=0o700)
    (data / "something").write_text("x")
    run = cli("demo", "--data-dir", str(data))
    assert run.code == 2
    assert "needs a fresh data directory" in run.stderr


def test_demo_refuses_to_run_in_production(cli: CliRunner, tmp_path: Path) -> None:
    run = cli("demo", "--data-dir", str(tmp_path / "d"), env={"TRADEGUARD_ENV": "production"})
    assert run.code == 2
    assert "TRADEGUARD_DEMO=true is refused in production" in run.stderr


def test_demo_refuses_bad_options_before_creating_anything(cli: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "d"
    run = cli("demo", "--data-dir", str(data), "--bot", str(tmp_path))
    assert run.code == 2
    assert "a bot folder holds bot.py and bot.toml" in run.stderr
    run = cli("demo", "--data-dir", str(data), "--candles", "9999999")
    assert run.code == 2
    assert "holds 5760 candles" in run.stderr
    assert not data.exists()


def test_without_a_checkout_the_demo_asks_for_a_bot_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed = tmp_path / "lib" / "site-packages" / "tradeguard" / "__init__.py"
    monkeypatch.setattr(tradeguard, "__file__", str(installed))
    with pytest.raises(ConfigError, match="pass --bot DIR"):
        demo_module._bot_source(None)


def test_without_a_sandbox_the_demo_says_so_and_runs_the_bot_on_paper_unconfined(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = Support(
        landlock_abi=0,
        user_namespaces=False,
        bwrap=None,
        reason="no Landlock on this kernel: live mode is refused",
    )
    monkeypatch.setattr(demo_module, "probe", lambda: missing)
    overrides: dict[str, object] = {"data_dir": tmp_path, "demo": True}
    with out.capture() as captured:
        sandboxed = demo_module._sandbox(overrides, load_settings(**overrides))
    assert sandboxed is False
    assert overrides["sandbox"] == "off"  # what the bot's supervisor then runs with
    assert "Sandbox: NOT AVAILABLE on this host (no Landlock" in captured.get()
    assert "UNCONFINED, as TRADEGUARD_SANDBOX=off does: paper trading only" in captured.get()
