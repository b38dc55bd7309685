"""`BotProcess`: one bot's sandboxed process, started with a fresh gateway token, its output
redacted into the bot's log, restarted with backoff, and given up on in a crash loop.

    process = BotProcess(info, paths, spec, settings, on_token=gateway.expect)
    await process.supervise(stop)      # until `stop` is set or a crash loop halts the bot

The token is 256 random bits, new for every start, written into a pipe whose read end is the
only descriptor the child inherits: it never appears in argv, the environment or a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tradeguard.bots import sandbox
from tradeguard.bots.registry import BotInfo, BotPaths
from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError
from tradeguard.secrets.patterns import redact_text
from tradeguard.secrets.secret import Secret

__all__ = ["BotProcess", "Usage", "descends_from", "usage_of"]

log = logging.getLogger("tradeguard.bots")

STOP_GRACE_S = 10.0
MAX_BACKOFF_S = 60.0
HEALTHY_AFTER_S = 60.0  # a run this long resets the backoff
LOG_LINE_MAX = 4096
LOG_FILE_MAX = 20 * 1024 * 1024  # then bot.log moves to bot.log.1


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `pid` is `ancestor` or runs under it (the sandbox's process tree)."""
    for _ in range(64):
        if pid == ancestor:
            return True
        parent = _parent(pid)
        if parent is None or parent <= 1:
            return False
        pid = parent
    return False


@dataclass(frozen=True)
class Usage:
    pid: int
    rss_bytes: int
    cpu_seconds: float


def usage_of(pid: int) -> Usage | None:
    """Memory and CPU time of one process, from /proc; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return Usage(pid, pages * os.sysconf("SC_PAGE_SIZE"), cpu)


class BotProcess:
    def __init__(
        self,
        info: BotInfo,
        paths: BotPaths,
        settings: Settings,
        *,
        on_token: Callable[[Secret, Callable[[int], bool]], None],
        on_crash: Callable[[int, bool], None] | None = None,
    ) -> None:
        self.info = info
        self.paths = paths
        self.settings = settings
        self._on_token = on_token
        self._on_crash = on_crash
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.crashes: deque[float] = deque()
        self.started_at: float | None = None
        self.last_exit: int | None = None
        self.gave_up = False

    # -- one run -------------------------------------------------------------------------------

    def _command(self, token_fd: int) -> list[str]:
        spec = sandbox.SandboxSpec.from_settings(
            self.settings,
            venv=self.paths.venv,
            code_dir=self.paths.code,
            state_dir=self.paths.state,
            runtime_dir=self.paths.runtime,
        )
        sandboxed = self.settings.sandbox == "on"
        argv = [
            str(self.paths.venv / "bin" / "python"),
            "-I",
            "-m",
            "tradeguard.sdk.runner",
            "--socket",
            str(self.paths.socket),
            "--token-fd",
            str(token_fd),
            "--bot-dir",
            str(self.paths.code),
            "--state-dir",
            str(self.paths.state),
            "--policy",
            json.dumps(sandbox.policy(spec) if sandboxed else {}),
        ]
        if not sandboxed:
            if self.info.mode == "live":
                raise ConfigError(
                    f"bot {self.info.name} is live, and TRADEGUARD_SANDBOX=off permits paper "
                    "trading only; turn the sandbox on"
                )
            return argv
        support = sandbox.probe()
        if not support.ok:
            raise sandbox.SandboxUnavailable(str(support.reason))
        return sandbox.command(spec, argv)

    async def start(self) -> asyncio.subprocess.Process:
        token = Secret(secrets.token_hex(32))
        read_fd, write_fd = os.pipe()
        try:
            with token.reveal_text() as text:
                os.write(write_fd, text.encode())
            os.close(write_fd)
            write_fd = -1
            argv = self._command(read_fd)
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                pass_fds=(read_fd,),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._environment(),
                start_new_session=True,
            )
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        root = self.process.pid
        self._on_token(token, lambda pid: descends_from(pid, root))
        self.started_at = time.monotonic()
        log.info("bot %s started (pid %d)", self.info.name, root)
        return self.process

    def _environment(self) -> dict[str, str]:
        """Nothing of ours: no TRADEGUARD_* setting, no secret, reaches the bot's process."""
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.paths.state),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    async def _pump_log(self, stream: asyncio.StreamReader) -> None:
        """The bot's output, redacted, one timestamped line at a time, into logs/bot.log."""
        path = self.paths.logs / "bot.log"
        while True:
            try:
                raw = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as error:
                raw = error.partial
            except asyncio.LimitOverrunError as error:
                raw = await stream.read(error.consumed)
            if not raw:
                return
            line = redact_text(raw[:LOG_LINE_MAX].decode(errors="replace").rstrip("\n"))
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            _append(path, f"{stamp} {line}\n")

    async def run_once(self) -> int:
        """Start the bot and wait for it to exit; its exit status."""
        process = await self.start()
        assert process.stdout is not None  # noqa: S101 - started with stdout=PIPE
        pump = asyncio.create_task(self._pump_log(process.stdout))
        try:
            code = await process.wait()
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        self.last_exit = code
        return code

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM (the bot's on_stop runs), then SIGKILL to the whole sandbox after `grace`."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    # -- supervision ---------------------------------------------------------------------------

    async def supervise(self, stop: asyncio.Event) -> None:
        """Run the bot until `stop` is set. A crash (non-zero exit) restarts it after 1, 2, 4
        ... 60 s; `bot_crash_limit` crashes within `bot_crash_window_s` give up (the caller
        halts the bot). A clean exit (status 0) is the bot's own decision: no restart."""
        backoff = 1.0
        while not stop.is_set():
            run = asyncio.create_task(self.run_once())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                await self.stop()
                await run
                stopper.cancel()
                return
            stopper.cancel()
            code = run.result()
            if code == 0:
                log.info("bot %s exited cleanly", self.info.name)
                return
            ran = time.monotonic() - (self.started_at or time.monotonic())
            backoff = 1.0 if ran >= HEALTHY_AFTER_S else backoff
            if self._crashed(code):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            self.restarts += 1

    def _crashed(self, code: int) -> bool:
        """Count a crash; True when it makes a crash loop (the bot is not restarted)."""
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > self.settings.bot_crash_window_s:
            self.crashes.popleft()
        self.gave_up = len(self.crashes) >= self.settings.bot_crash_limit
        verdict = ": a crash loop, giving up" if self.gave_up else ""
        log.warning("bot %s crashed (exit %d)%s", self.info.name, code, verdict)
        if self._on_crash is not None:
            self._on_crash(code, self.gave_up)
        return self.gave_up


def _append(path: Path, text: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_FILE_MAX:
            path.replace(path.with_suffix(".log.1"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(text)
