"""A backtest of a bot's code, in the bot sandbox: the host side.

    job = BacktestJob(bot_dir=Path("examples/sma_cross"), data=Path("ETH_BTC-5m.csv"), out=out)
    outcome = run_backtest_job(settings, job, progress=lambda done, total: ...)

A backtest runs the same untrusted code as a live bot, so it gets the same sandbox (bubblewrap,
then the worker confines itself: rlimits, no new processes, Landlock): no network, no data dir,
no keys; it reads the bot's code, its candle file and tradeguard's own code, and writes only its
output dir. Inside, `tradeguard.bots.backtest_worker` runs the bot in-process on the backtest
engine. Its results are the bot's own numbers about public data: nothing trusts them for a
security decision (the promotion gate reads paper fills booked by the gateway, not backtests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import tradeguard
from tradeguard.bots import sandbox
from tradeguard.config import Settings
from tradeguard.core.permissions import create_private_dir
from tradeguard.secrets.redact import redact_text

__all__ = ["BacktestJob", "BacktestOutcome", "run_backtest_job"]

LOG_LINE_MAX = 4096
BACKTEST_CPU_SECONDS = 6 * 3600  # a long backtest is allowed; a spinning bot still ends


@dataclass(frozen=True)
class BacktestJob:
    """`bot_dir` holds bot.py and bot.toml; `site` the bot's own site-packages (a created
    bot's virtualenv) when it needs packages; `out` a new directory for the results."""

    bot_dir: Path
    data: Path
    out: Path
    site: Path | None = None
    symbol: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    fill_gaps: str = "error"
    no_breakers: bool = False
    fee_bps: str | None = None
    slippage_bps: str | None = None


@dataclass(frozen=True)
class BacktestOutcome:
    exit_code: int
    summary: dict[str, Any] | None  # report.json, when the run got that far
    error: dict[str, str] | None  # {"kind": data|config|bot, "message": ...}
    log: Path  # the bot's output, redacted


def _tradeguard_source() -> Path:
    """Where the `tradeguard` package lives (an editable install keeps it outside the venv)."""
    return Path(tradeguard.__file__).resolve().parent.parent


def _spec(settings: Settings, job: BacktestJob) -> sandbox.SandboxSpec:
    if sys.prefix == sys.base_prefix:
        raise sandbox.SandboxUnavailable(
            "tradeguard runs outside a virtualenv, so the sandbox cannot show the backtest "
            "tradeguard's code without the rest of the installation's packages; install "
            "tradeguard in a virtualenv (make demo does)"
        )
    extra = [job.data.resolve(), _tradeguard_source()]
    if job.site is not None:
        extra.append(job.site)
    limits = sandbox.Limits.from_settings(settings)
    limits = sandbox.Limits(
        memory_bytes=limits.memory_bytes,
        cpu_seconds=max(limits.cpu_seconds, BACKTEST_CPU_SECONDS),
        open_files=limits.open_files,
        processes=limits.processes,
        file_bytes=limits.file_bytes,
    )
    return sandbox.SandboxSpec(
        venv=Path(sys.prefix),
        code_dir=job.bot_dir.resolve(),
        state_dir=job.out.resolve(),
        runtime_dir=None,
        limits=limits,
        extra_read=tuple(dict.fromkeys(extra)),
    )


def _worker_argv(job: BacktestJob, report_fd: int, policy: dict[str, Any]) -> list[str]:
    argv = [sys.executable, "-I", "-m", "tradeguard.bots.backtest_worker"]
    argv += ["--bot-dir", str(job.bot_dir.resolve()), "--data", str(job.data.resolve())]
    argv += ["--out", str(job.out.resolve()), "--report-fd", str(report_fd)]
    argv += ["--policy", json.dumps(policy), "--fill-gaps", job.fill_gaps]
    for flag, value in (
        ("--site", job.site),
        ("--symbol", job.symbol),
        ("--from-ms", job.from_ms),
        ("--to-ms", job.to_ms),
        ("--fee-bps", job.fee_bps),
        ("--slippage-bps", job.slippage_bps),
    ):
        if value is not None:
            argv += [flag, str(value)]
    if job.no_breakers:
        argv.append("--no-breakers")
    return argv


def command(settings: Settings, job: BacktestJob, report_fd: int) -> list[str]:
    """The command that runs the worker: in the sandbox, or (TRADEGUARD_SANDBOX=off) as a
    plain process, still without our environment."""
    spec = _spec(settings, job)
    if settings.sandbox == "off":
        return _worker_argv(job, report_fd, {})
    support = sandbox.probe()
    if not support.ok:
        raise sandbox.SandboxUnavailable(str(support.reason))
    return sandbox.command(spec, _worker_argv(job, report_fd, sandbox.policy(spec)))


def _pump_log(stream: IO[bytes], path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "w") as log:
        for raw in iter(stream.readline, b""):
            log.write(redact_text(raw[:LOG_LINE_MAX].decode(errors="replace").rstrip("\n")))
            log.write("\n")


def run_backtest_job(
    settings: Settings, job: BacktestJob, *, progress: Callable[[int, int], None] | None = None
) -> BacktestOutcome:
    """Run the backtest and wait for it; `progress(done, total)` as candles go by."""
    if job.out.exists() and any(job.out.iterdir()):
        raise FileExistsError(f"{job.out} is not empty: give the backtest a new output dir")
    if not job.out.exists():
        create_private_dir(job.out)
    read_fd, write_fd = os.pipe()
    try:
        argv = command(settings, job, write_fd)
        process = subprocess.Popen(
            argv,
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    log_path = job.out / "bot.log"
    assert process.stderr is not None  # noqa: S101 - started with stderr=PIPE
    pump = threading.Thread(target=_pump_log, args=(process.stderr, log_path), daemon=True)
    pump.start()
    error = _read_reports(read_fd, progress)
    code = process.wait()
    pump.join()
    summary_path = job.out / "report.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return BacktestOutcome(code, summary, error, log_path)


def _read_reports(
    read_fd: int, progress: Callable[[int, int], None] | None
) -> dict[str, str] | None:
    error: dict[str, str] | None = None
    with os.fdopen(read_fd, "r") as reports:
        for line in reports:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours to trust, and nothing to show
            if not isinstance(message, dict):
                continue
            if message.get("type") == "progress" and progress is not None:
                progress(int(message.get("done", 0)), int(message.get("total", 0)))
            elif message.get("type") == "error":
                error = {
                    "kind": str(message.get("kind", "bot")),
                    "message": redact_text(str(message.get("message", ""))),
                }
    return error
