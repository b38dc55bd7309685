"""`tradeguard backtest` through the real command: the bot's code runs in the bot sandbox,
results land as files with a chart, bad candle files are refused naming the line, a bot that
raises leaves partial results and exit 1, and a paper run of the same bot over the same candles
fills exactly as the backtest did."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from tests.conftest import CliRunner, Run

from tradeguard.marketdata.sample import sample_path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sma_cross"
CANDLES = 400  # the example trades a few times (and trips its loss-streak breaker) in these


@pytest.fixture
def home(bot_cli: CliRunner) -> CliRunner:
    return bot_cli


def candle_file(tmp_path: Path, count: int = CANDLES, edit: object = None) -> Path:
    lines = sample_path("ETH_BTC-5m.csv").read_text().splitlines()[: count + 1]
    if edit is not None:
        lines = edit(lines)  # type: ignore[operator]
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def backtest(cli: CliRunner, tmp_path: Path, bot: str, data: Path, *args: str) -> Run:
    return cli("backtest", bot, "--data", str(data), "--out", str(tmp_path / "out"), *args)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_a_backtest_runs_the_example_in_the_sandbox(home: CliRunner, tmp_path: Path) -> None:
    run = backtest(home, tmp_path, str(EXAMPLE), candle_file(tmp_path))
    assert run.code == 0, run.output

    out = tmp_path / "out"
    report = json.loads((out / "report.json").read_text())["report"]
    assert report["candles"] == CANDLES
    trades = rows(out / "trades.csv")
    assert len(trades) == report["trades"] > 0
    assert len(rows(out / "fills.csv")) == report["fills"]
    assert len(rows(out / "equity.csv")) == CANDLES
    assert (out / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("closed trades", "win rate", "profit factor", "max drawdown", "Sharpe"):
        assert name in run.stdout
    assert "consecutive_losses" in run.stdout  # the example's breaker trips in this window
    assert f"Equity chart: {out / 'equity.png'}" in run.stdout


def _gap(lines: list[str]) -> list[str]:
    return lines[:10] + lines[11:]


def _duplicate(lines: list[str]) -> list[str]:
    return [*lines[:10], lines[9], *lines[10:]]


def _unsorted(lines: list[str]) -> list[str]:
    return [*lines[:10], lines[5], *lines[11:]]  # line 11 goes back in time


def _nan(lines: list[str]) -> list[str]:
    fields = lines[5].split(",")
    fields[4] = "NaN"
    return [*lines[:5], ",".join(fields), *lines[6:]]


def _header(lines: list[str]) -> list[str]:
    return ["time,open,high,low,close,volume", *lines[1:]]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_gap, "line 11"),
        (_duplicate, "line 11"),
        (_unsorted, "line 11"),
        (_nan, "line 6"),
        (_header, "line 1"),
    ],
)
def test_a_bad_candle_file_is_refused_naming_the_line(
    home: CliRunner, tmp_path: Path, edit: object, message: str
) -> None:
    data = candle_file(tmp_path, 60, edit)
    run = backtest(home, tmp_path, str(EXAMPLE), data)
    assert run.code == 2, run.output
    assert str(data) in run.stderr
    assert message in run.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_gaps_can_be_filled_when_asked(home: CliRunner, tmp_path: Path) -> None:
    data = candle_file(tmp_path, 60, _gap)
    run = backtest(home, tmp_path, str(EXAMPLE), data, "--fill-gaps", "flat")
    assert run.code == 0, run.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["report"]["candles"] == 60


def test_a_bot_that_raises_exits_1_with_its_traceback(home: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "bot"
    shutil.copytree(EXAMPLE, folder)
    code = (folder / "bot.py").read_text()
    (folder / "bot.py").write_text(
        code.replace(
            "        closes = self.closes\n",
            "        closes = self.closes\n"
            "        self.seen = getattr(self, 'seen', 0) + 1\n"
            "        if self.seen == 50:\n"
            "            raise RuntimeError('strategy bug')\n",
        )
    )
    run = backtest(home, tmp_path, str(folder), candle_file(tmp_path, 100))
    assert run.code == 1, run.output
    assert "RuntimeError: strategy bug" in run.stderr
    assert "results up to that candle are saved" in run.stderr
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["report"]["candles"] == 49
    assert len(rows(tmp_path / "out" / "equity.csv")) == 49


PROBE_BOT = """
import os, socket
from pathlib import Path
from tradeguard.sdk import Bot

class Probe(Bot):
    async def on_start(self):
        tries = {
            "read the database": lambda: Path(self.params["db"]).read_bytes(),
            "list the data dir": lambda: os.listdir(self.params["data"]),
            "reach PostgreSQL": lambda: socket.create_connection(("127.0.0.1", 5432), 2),
            "start a process": lambda: os.system("true"),
            "write to the code dir": lambda: Path(__file__).write_text("changed"),
        }
        for what, attempt in tries.items():
            try:
                result = attempt()
            except Exception as error:
                self.log.warning("blocked: %s (%s)", what, type(error).__name__)
            else:
                if what == "start a process" and result != 0:
                    self.log.warning("blocked: %s (status %s)", what, result)
                    continue
                raise SystemExit(f"the sandbox let the bot {what}")
"""


def test_a_backtest_cannot_reach_keys_network_or_processes(home: CliRunner, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert home("db", "upgrade").code == 0  # the database exists, for the bot to go after
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "bot.py").write_text(PROBE_BOT)
    (folder / "bot.toml").write_text(
        (EXAMPLE / "bot.toml")
        .read_text()
        .replace('name = "sma-cross"', 'name = "probe"')
        .replace(
            "[params]\n",
            f'[params]\ndb = "{data_dir / "tradeguard.db"}"\ndata = "{data_dir}"\n',
        )
    )
    run = backtest(home, tmp_path, str(folder), candle_file(tmp_path, 40))
    assert run.code == 0, run.output
    log = (tmp_path / "out" / "bot.log").read_text()
    for what in (
        "read the database",
        "list the data dir",
        "reach PostgreSQL",
        "start a process",
        "write to the code dir",
    ):
        assert f"blocked: {what}" in log, log


def _paper_fills(tmp_path: Path) -> list[tuple[str, str, str, str, str]]:
    with closing(sqlite3.connect(tmp_path / "data" / "tradeguard.db")) as conn:
        found = conn.execute("SELECT side, amount, price, fee, at FROM paper_trades ORDER BY seq")
        return [(s, a, p, f, at) for s, a, p, f, at in found]


def test_a_paper_run_fills_as_the_backtest_did(home: CliRunner, tmp_path: Path) -> None:
    data = candle_file(tmp_path)
    assert home("users", "add", "alice", "--vault-mode", "service").code == 0
    created = home("bots", "create", "--from", str(EXAMPLE))
    assert created.code == 0, created.output
    ran = home("bots", "run", "sma-cross", "--replay", str(data))
    assert ran.code == 0, ran.output
    paper = _paper_fills(tmp_path)

    run = backtest(home, tmp_path, "sma-cross", data)  # the created bot, by name
    assert run.code == 0, run.output
    tested = rows(tmp_path / "out" / "fills.csv")

    assert len(paper) >= 4
    assert [(f["side"], f["amount"], f["price"], f["fee"]) for f in tested] == [
        (s, a, p, f) for s, a, p, f, _ in paper
    ]
    assert [f["time"][:19] for f in tested] == [at.replace(" ", "T")[:19] for *_, at in paper]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fee-bps", "ten"), "--fee-bps must be a number"),
        (("--slippage-bps", "5000"), "slippage"),
    ],
)
def test_bad_costs_are_refused_before_anything_runs(
    home: CliRunner, tmp_path: Path, args: tuple[str, str], message: str
) -> None:
    run = backtest(home, tmp_path, str(EXAMPLE), candle_file(tmp_path, 40), *args)
    assert run.code == 2, run.output
    assert message in run.output
    assert not (tmp_path / "out").exists()
