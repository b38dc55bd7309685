"""`tradeguard demo` (what `make demo` runs): the whole secure order path on real data.

1. A fresh installation on the embedded defaults: a private data directory with its SQLite
   store, a master keyring and an audit keyring, a demo user (vault in service mode) with a
   paper credential, `vault verify`, and the deployment checks (`doctor`).
2. The SMA-crossover example bot (`examples/sma_cross` in the source checkout, or `--bot DIR`)
   created through the registry like `bots create` does: its code copied in, its own virtualenv
   holding the SDK and nothing else of tradeguard.
3. The bundled real ETH/BTC 5-minute candles (`--candles`, from the first) replayed on a
   simulated clock, as fast as the bot handles them, through the whole order path: bot process
   (in its sandbox when this host supports one) -> gateway socket (token, SO_PEERCRED) -> risk
   engine -> `order.intent` in the audit log, durable -> paper venue -> fills back to the bot.
4. A live status while it runs, and a summary afterwards: closed trades, win rate, profit
   factor and net PnL from `tradeguard.risk.metrics` over the risk engine's closed trades, the
   maximum drawdown of the equity after each candle, the equity chart (PNG) and curve (CSV),
   and `audit verify` over everything the demo wrote.

Every number shown comes from the risk engine, the paper venue or the audit log of this run.
Exit status 1 when a deployment check fails, the bot crashed or the audit log does not verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

import tradeguard
from tradeguard.audit import AUDIT_KEY, load_audit_keys, verify
from tradeguard.backtest.chart import save_equity_chart
from tradeguard.bots.registry import BotInfo, create_bot
from tradeguard.bots.runtime import BotRuntime
from tradeguard.bots.sandbox import probe
from tradeguard.cli.console import out
from tradeguard.cli.doctor import render_checks
from tradeguard.cli.open_vault import opened_vault
from tradeguard.cli.settings import cli_settings
from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError, DataDirError
from tradeguard.core.events import EventName
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.marketdata.files import parse_file_name, read_candles
from tradeguard.marketdata.sample import sample_path
from tradeguard.ops.audit_log import open_audit_log
from tradeguard.ops.doctor import run_checks
from tradeguard.ops.store import open_store
from tradeguard.risk.breakers import Breaker, Reading
from tradeguard.risk.metrics import max_drawdown, record_of
from tradeguard.risk.states import Scope
from tradeguard.risk.store import SqlRiskStore
from tradeguard.store import create_engine
from tradeguard.store.models import AuditEntry
from tradeguard.vault.master import FILE_VARIABLE, init_keyring_file

__all__ = ["DEFAULT_CANDLES", "demo"]

SAMPLE = "ETH_BTC-5m.csv"
# All of the sample: 2-4 ms a candle end to end on a 2-vCPU machine, so the whole demo takes
# well under the 2 minutes it may (docs/demo.md has the measurements).
DEFAULT_CANDLES = 5760
REFRESH_S = 0.1  # the live status's refresh interval on a terminal
PLAIN_LINES = 10  # status lines printed over a run when the output is not a terminal


# -- set-up ------------------------------------------------------------------------------------


def _fresh_dir(data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="tradeguard-demo-"))  # created 0700
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DataDirError(
            f"the demo needs a fresh data directory, and {data_dir} is not empty; pass a new "
            "path to --data-dir or leave it out"
        )
    return data_dir


def _bot_source(bot: Path | None) -> Path:
    """The bot folder to run: `--bot`, or examples/sma_cross in the source checkout this
    package is installed from (`pip install -e .`, which `make demo` does)."""
    if bot is not None:
        if not (bot / "bot.py").is_file() or not (bot / "bot.toml").is_file():
            raise ConfigError(f"--bot {bot}: a bot folder holds bot.py and bot.toml")
        return bot
    checkout = Path(tradeguard.__file__).resolve().parents[2]
    example = checkout / "examples" / "sma_cross"
    if not (example / "bot.py").is_file():
        raise ConfigError(
            f"the demo runs the example bot examples/sma_cross from tradeguard's source "
            f"checkout, and there is none at {example} (this installation is not an editable "
            "install of a checkout); pass --bot DIR, e.g. --bot path/to/tradeguard/"
            "examples/sma_cross"
        )
    return example


def _demo_keys(data_dir: Path) -> Path:
    """Master and audit keyrings in the demo directory (doctor flags that in production)."""
    keyring = data_dir / "master-keyring.json"
    init_keyring_file(keyring)
    audit_keyring = data_dir / "audit-keyring.json"
    init_keyring_file(audit_keyring)
    # The demo is a process of its own: pointing the variables at its keyrings makes every
    # later step (the vault, the audit log, doctor) find them the way a real installation would.
    os.environ[FILE_VARIABLE] = str(keyring)
    os.environ[AUDIT_KEY.file_variable] = str(audit_keyring)
    return keyring


def _demo_vault(data_dir: Path, overrides: dict[str, object]) -> None:
    """A demo user in service mode with a paper credential, every step in the audit log."""
    keyring = _demo_keys(data_dir)
    with opened_vault(**overrides) as vault:
        vault.add_user("demo", "service")
        info = vault.add_credential("demo", "paper", "paper-main", {})
        rows = vault.verify()
    ok = sum(r.status == "ok" for r in rows)
    out.print(
        f"Vault: keyring {keyring} (0600), user demo (service mode), credential "
        f"{info.name} on {info.venue}; vault verify: {ok}/{len(rows)} ok",
        markup=False,
    )


def _sandbox(overrides: dict[str, object], settings: Settings) -> bool:
    """Whether the bot runs sandboxed; when this host cannot sandbox it, the demo runs it the
    way TRADEGUARD_SANDBOX=off does (paper only) and says so."""
    if settings.sandbox == "off":
        out.print(
            "Sandbox: OFF (TRADEGUARD_SANDBOX=off): the bot runs unconfined, which is allowed "
            "for paper trading only.",
            markup=False,
        )
        return False
    support = probe()
    if support.ok:
        out.print(
            f"Sandbox: available (bubblewrap namespaces, Landlock ABI {support.landlock_abi}, "
            "seccomp, rlimits): the bot gets no network, no keys and no view of the host.",
            markup=False,
        )
        return True
    overrides["sandbox"] = "off"
    out.print(
        f"Sandbox: NOT AVAILABLE on this host ({support.reason}). The demo runs the bot "
        "UNCONFINED, as TRADEGUARD_SANDBOX=off does: paper trading only.",
        markup=False,
    )
    return False


def _candles(count: int) -> tuple[str, Timeframe, list[Candle]]:
    path = sample_path(SAMPLE)
    symbol, timeframe = parse_file_name(path.name)
    if symbol is None or timeframe is None:
        raise ConfigError(f"the bundled sample {SAMPLE} is not named SYMBOL-TIMEFRAME.csv")
    candles = list(read_candles(path).candles)
    if count > len(candles):
        raise ConfigError(f"--candles {count}: the sample {SAMPLE} holds {len(candles)} candles")
    return symbol, timeframe, candles[:count]


# -- the live status ---------------------------------------------------------------------------


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _money(value: Decimal, places: int = 8) -> str:
    return f"{value:+.{places}f}"


def _reading(reading: Reading) -> str:
    if reading.breaker is Breaker.CONSECUTIVE_LOSSES:
        return f"consecutive losses {reading.value}/{reading.limit}"
    name = str(reading.breaker).replace("_", " ")
    return f"{name} {reading.value:.2f}%/{reading.limit}%"


@dataclass
class _Recorder:
    """Called after each replayed candle (`BotRuntime.after_candle`): keeps the equity curve
    and shows the status, all read from the risk engine, the paper venue and the audit log."""

    runtime: BotRuntime
    db: sa.Engine
    symbol: str
    total: int
    capital: Decimal
    quote: str
    step_ms: int  # the timeframe: a candle closes step_ms after it opens
    live: Live | None = None
    seen: int = 0
    times_ms: list[int] = field(default_factory=list)
    equity: list[Decimal] = field(default_factory=list)
    orders: int = 0
    fills: int = 0
    started: float = field(default_factory=time.monotonic)
    _shown: float = 0.0
    _line_every: int = 1

    def __post_init__(self) -> None:
        self._line_every = max(1, self.total // PLAIN_LINES)

    async def __call__(self, symbol: str, candle: Candle) -> None:
        engine = self.runtime.engine
        if symbol != self.symbol or engine is None:
            return
        self.seen += 1
        self.times_ms.append(candle.ts_ms + self.step_ms)
        self.equity.append(engine.equity(self.runtime.info.name))
        now = time.monotonic()
        if self.live is not None and now - self._shown >= REFRESH_S:
            self._shown = now
            await self.count()
            self.live.update(self.render(candle), refresh=True)
        elif self.live is None and self.seen % self._line_every == 0:
            await self.count()
            out.print(self.line(candle), markup=False, highlight=False)

    async def count(self) -> None:
        """Orders: the `order.intent` entries in the audit log (each durable before the order
        went out). Fills: the paper venue's fills of this account."""
        query = sa.select(sa.func.count()).where(AuditEntry.event == EventName.ORDER_INTENT.value)
        with self.db.connect() as conn:
            self.orders = int(conn.scalar(query) or 0)
        venue = self.runtime.venue
        if venue is not None:
            self.fills = len(await venue.fetch_my_trades(self.symbol))

    def _state(self) -> tuple[str, Decimal, Decimal, Decimal, str, list[Reading]]:
        engine = self.runtime.engine
        assert engine is not None  # noqa: S101 - called after the first candle
        bot = self.runtime.info.name
        book = engine.book(bot)
        position = book.positions.get(self.symbol)
        held = "flat"
        if position is not None and position.qty:
            base = self.symbol.split("/")[0]
            held = f"{position.qty} {base} at {position.avg_price:.8f}"
        equity = self.equity[-1] if self.equity else engine.equity(bot)
        realized = book.realized
        unrealized = equity - self.capital - realized
        return (
            held,
            realized,
            unrealized,
            equity,
            engine.effective_state(bot).value,
            engine.readings(bot),
        )

    def render(self, candle: Candle) -> RenderableType:
        held, realized, unrealized, equity, state, readings = self._state()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        bar = ProgressBar(total=self.total, completed=self.seen, width=40)
        replay = Text(
            f"{self.seen:,}/{self.total:,} candles, at {_utc(candle.ts_ms)} UTC, "
            f"{time.monotonic() - self.started:.1f} s"
        )
        grid.add_row("replay", Group(bar, replay))
        grid.add_row("orders", f"{self.orders} (order.intent in the audit log)")
        grid.add_row("fills", f"{self.fills} (paper venue)")
        grid.add_row("position", held)
        grid.add_row(
            "PnL",
            f"realized {_money(realized)} {self.quote}, unrealized {_money(unrealized)} "
            f"{self.quote}",
        )
        grid.add_row("equity", f"{equity:.8f} {self.quote} (capital {self.capital})")
        warn = self.runtime.manifest.limits.breakers.warn_at_pct / 100
        breakers = Text()
        for i, reading in enumerate(readings):
            style = (
                "bold red"
                if reading.tripped
                else "yellow"
                if reading.value >= reading.limit * warn
                else ""
            )
            breakers.append(("  " if i else "") + _reading(reading), style=style)
        grid.add_row("breakers", breakers)
        grid.add_row("trading", Text(state, style="bold red" if state != "ACTIVE" else "green"))
        return grid

    def line(self, candle: Candle) -> str:
        held, realized, unrealized, equity, state, readings = self._state()
        return (
            f"[{self.seen:>5}/{self.total}] {_utc(candle.ts_ms)} orders {self.orders} fills "
            f"{self.fills} position {held} realized {_money(realized)} unrealized "
            f"{_money(unrealized)} equity {equity:.8f} {self.quote} | "
            + ", ".join(_reading(r) for r in readings)
            + f" | {state}"
        )


@contextlib.contextmanager
def _logs_above(live: Live | None) -> Iterator[None]:
    """While the live status shows, our log lines go through rich's stderr redirect (printed
    above the status) instead of straight to the terminal, where they would tear it."""
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "_tradeguard", False)]
    streams = [h for h in handlers if isinstance(h, logging.StreamHandler)]
    if live is None or not streams:
        yield
        return
    old = [h.setStream(sys.stderr) for h in streams]
    try:
        yield
    finally:
        for handler, stream in zip(streams, old, strict=True):
            if stream is not None:
                handler.setStream(stream)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class _Outcome:
    info: BotInfo
    recorder: _Recorder
    exit_code: int
    crashes: int
    seconds: float
    stopped: bool
    balances: dict[str, Decimal]


async def _replay(runtime: BotRuntime, recorder: _Recorder) -> tuple[int, bool, dict[str, Decimal]]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    code = await runtime.run(stop)
    await recorder.count()
    balances: dict[str, Decimal] = {}
    if runtime.venue is not None:
        balance = await runtime.venue.fetch_balance()
        balances = {c: line.free + line.used for c, line in balance.lines.items()}
    return code, stop.is_set(), balances


def _trade(overrides: dict[str, object], source: Path, count: int, sandboxed: bool) -> _Outcome:
    settings = cli_settings(**overrides)
    symbol, timeframe, candles = _candles(count)
    keys = load_audit_keys(settings)
    store = open_store(settings)
    db = store.engine
    audit = open_audit_log(settings, db, keys)
    try:
        began = time.monotonic()
        info = create_bot(
            db,
            settings,
            source,
            user="demo",
            events=audit,
            connection="paper",
            show=lambda line: out.print(line, markup=False),
        )
        manifest = info.manifest(settings)
        if manifest.timeframe != str(timeframe) or symbol not in manifest.symbols:
            raise ConfigError(
                f"bot {info.name} trades {', '.join(manifest.symbols)} on {manifest.timeframe} "
                f"candles; the demo replays {symbol} {timeframe} ({SAMPLE}); pass a --bot that "
                "trades those"
            )
        paths = info.paths(settings)
        out.print(
            f"Bot: {info.name} ({info.id}) created from {source} on connection paper: code in "
            f"{paths.code}, its own virtualenv with the SDK alone in {paths.venv} "
            f"({time.monotonic() - began:.1f} s)",
            markup=False,
        )
        out.print(
            f"Replay: {len(candles):,} real {symbol} {timeframe} candles from {SAMPLE} (bundled), "
            f"{_utc(candles[0].ts_ms)} to {_utc(candles[-1].ts_ms)} UTC, on a simulated "
            "clock: the next candle goes out as soon as the bot has handled the last.",
            markup=False,
        )
        where = "in its sandbox" if sandboxed else "UNSANDBOXED (paper only)"
        out.print(
            f"Order path: bot process {where} -> gateway socket {paths.socket} (0600, a fresh "
            "token, SO_PEERCRED) -> risk engine -> order.intent in the audit log (durable) -> "
            "paper venue -> fills back to the bot",
            markup=False,
        )
        runtime = BotRuntime(settings, db, audit, info, replay={symbol: candles})
        recorder = _Recorder(
            runtime,
            db,
            symbol,
            len(candles),
            manifest.limits.capital,
            symbol.split("/")[1],
            timeframe.ms,
        )
        runtime.after_candle = recorder
        live = (
            Live(console=out, auto_refresh=False, redirect_stderr=True) if out.is_terminal else None
        )
        recorder.live = live
        started = time.monotonic()
        recorder.started = started
        with live or contextlib.nullcontext(), _logs_above(live):
            code, stopped, balances = asyncio.run(_replay(runtime, recorder))
            if live is not None and recorder.seen:
                live.update(recorder.render(candles[recorder.seen - 1]), refresh=True)
        seconds = time.monotonic() - started
        with contextlib.suppress(OSError):  # the bot's (empty) runtime dir: every demo has one
            paths.runtime.rmdir()
    finally:
        audit.close()
        db.dispose()
    return _Outcome(info, recorder, code, runtime.crashes, seconds, stopped, balances)


# -- the summary -------------------------------------------------------------------------------


def _ratio(value: Decimal | None, what: str) -> str:
    return what if value is None else f"{value:.2f}"


def _summary(settings: Settings, outcome: _Outcome) -> tuple[Path | None, Path | None]:
    """The summary table; writes the equity chart and CSV, and returns their paths."""
    recorder, info = outcome.recorder, outcome.info
    engine = create_engine(settings.database())
    try:
        risk = SqlRiskStore(engine)
        trades = risk.closed_trades(info.name, "paper")
        trips = risk.trips(Scope.bot(info.name))
    finally:
        engine.dispose()
    record = record_of(t.pnl for t in trades)
    quote = recorder.quote
    table = Table(title="Demo summary", show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # paths whole, never cut with an ellipsis
    per = outcome.seconds / recorder.seen * 1000 if recorder.seen else 0.0
    table.add_row(
        "replay",
        f"{recorder.seen:,} of {recorder.total:,} candles in {outcome.seconds:.1f} s "
        f"({per:.1f} ms a candle)" + (" - stopped early" if outcome.stopped else ""),
    )
    table.add_row("orders", f"{recorder.orders} (order.intent entries in the audit log)")
    table.add_row("fills", f"{recorder.fills} (paper venue)")
    table.add_row("closed trades", str(record.trades))
    win_rate = "n/a (no trade)" if record.win_rate is None else f"{record.win_rate * 100:.1f} %"
    table.add_row("win rate", f"{win_rate} ({record.wins} won, {record.losses} lost)")
    table.add_row("profit factor", _ratio(record.profit_factor, "n/a (no losing trade)"))
    table.add_row("net PnL", f"{_money(record.net)} {quote} (closed trades, fees included)")
    if recorder.equity:
        drawdown = max_drawdown(recorder.equity)
        table.add_row(
            "max drawdown",
            f"{drawdown * 100:.2f} % (equity after each candle, from its running peak)",
        )
        table.add_row(
            "final equity",
            f"{recorder.equity[-1]:.8f} {quote} (capital {recorder.capital} {quote})",
        )
    if outcome.balances:
        table.add_row(
            "paper account",
            ", ".join(f"{c} {v:.8f}" for c, v in sorted(outcome.balances.items()))
            + " (the paper venue's balances)",
        )
    for trip in reversed(trips):
        table.add_row(
            "breaker tripped",
            f"{trip.breaker} {trip.value}/{trip.limit} at {trip.tripped_at:%Y-%m-%d %H:%M} UTC "
            "(simulated time): the bot is HALTED, and the risk engine refuses its new orders "
            "until a person resets it (tradeguard risk reset)",
        )
    crashed = f", {outcome.crashes} crash(es)" if outcome.crashes else ""
    table.add_row("bot process", f"exit {outcome.exit_code}{crashed}")
    log = info.paths(settings).logs / "bot.log"
    table.add_row("bot log", str(log))
    chart_path = csv_path = None
    if recorder.equity:
        # matplotlib narrates building its font cache (a fresh machine's first chart) at INFO
        logging.getLogger("matplotlib").setLevel(logging.WARNING)
        csv_path = settings.data_dir / "demo-equity.csv"
        _write_csv(csv_path, recorder)
        chart_path = save_equity_chart(
            settings.data_dir / "demo-equity.png",
            recorder.times_ms,
            [float(e) for e in recorder.equity],
            title=f"{info.name} on {recorder.symbol} (tradeguard demo, paper)",
            currency=quote,
        )
        table.add_row("equity chart", str(chart_path))
        table.add_row("equity CSV", str(csv_path))
    out.print(table, soft_wrap=False)
    return chart_path, csv_path


def _write_csv(path: Path, recorder: _Recorder) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["close_time_utc", "close_ms", f"equity_{recorder.quote.lower()}"])
        for ms, equity in zip(recorder.times_ms, recorder.equity, strict=True):
            stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
            writer.writerow([stamp, ms, str(equity)])


def _demo_audit(overrides: dict[str, object]) -> bool:
    """`audit verify` against the checkpoint file the steps above wrote; whether it is intact."""
    settings = cli_settings(**overrides)  # again: the audit key variable is set now
    engine = create_engine(settings.database())
    try:
        report = verify(engine, load_audit_keys(settings), against=settings.checkpoint_file())
    finally:
        engine.dispose()
    state = "intact" if report.ok else f"DAMAGED ({report.findings[0].message})"
    out.print(
        f"Audit log: {report.entries} entries, {report.heads} signed tree head(s), "
        f"checkpoints in {settings.checkpoint_file()}; audit verify: {state}",
        markup=False,
    )
    return report.ok


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where to put the demo installation (default: a new temporary dir)."),
    ] = None,
    bot: Annotated[
        Path | None,
        typer.Option(help="The bot folder to run (default: examples/sma_cross of the checkout)."),
    ] = None,
    candles: Annotated[
        int,
        typer.Option(min=1, help="How many of the sample's candles to replay, from the first."),
    ] = DEFAULT_CANDLES,
) -> None:
    """A fresh installation on SQLite and the paper venue, and the SMA example bot trading real
    candles through the whole order path; a summary, the equity chart and `audit verify`."""
    source = _bot_source(bot)
    _candles(candles)  # a bad --candles fails before anything is created
    fresh = _fresh_dir(data_dir)
    overrides: dict[str, object] = {"data_dir": fresh, "demo": True, "database_url": None}
    settings = cli_settings(**overrides)
    store = open_store(settings)
    store.engine.dispose()
    out.print(f"Demo installation: {settings.data_dir}", markup=False)
    out.print(f"Database: {store.target.describe()}, schema {store.after.head}", markup=False)
    _demo_vault(settings.data_dir, overrides)
    sandboxed = _sandbox(overrides, settings)
    checks = run_checks(overrides=overrides)
    render_checks(checks)
    outcome = _trade(overrides, source, candles, sandboxed)
    _summary(cli_settings(**overrides), outcome)
    intact = _demo_audit(overrides)
    failed = [c.name for c in checks if c.status == "fail"]
    crashed = outcome.exit_code != 0 or outcome.crashes > 0
    if failed or crashed or not intact:
        reasons = [f"deployment check(s) failed: {', '.join(failed)}"] if failed else []
        reasons += ["the bot crashed (see its log)"] if crashed else []
        reasons += ["the audit log does not verify"] if not intact else []
        out.print(f"Demo FAILED: {'; '.join(reasons)}", markup=False)
        raise typer.Exit(1)
    out.print("Demo done: every order above passed the risk engine and the audit log.")
