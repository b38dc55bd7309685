"""Fixtures for commands that need a running `tradeguard serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import pytest
from tests.conftest import audit_key_env

from tradeguard.vault.master import FILE_VARIABLE, init_keyring_file


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A fresh installation's variables: data dir, master and audit keyring files."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    init_keyring_file(keys / "master.keyring")
    return {
        "TRADEGUARD_DATA_DIR": str(tmp_path / "data"),
        FILE_VARIABLE: str(keys / "master.keyring"),
        **audit_key_env(keys),
        "PYTHONUNBUFFERED": "1",
    }


def child_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGUARD_")}
    return {**base, "COLUMNS": "200", "NO_COLOR": "1", **env}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_serve(
    env: dict[str, str], cwd: Path, *, terminal: bool
) -> Iterator[tuple[str, list[str]]]:
    """`tradeguard serve` on a free port, its stderr a terminal (a pty) or a pipe (as under
    systemd); yields its URL and its stderr lines so far, and checks it stops cleanly."""
    port = _free_port()
    reading, writing = os.openpty() if terminal else os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "tradeguard", "serve", "--port", str(port)],
        cwd=cwd,
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=writing,
    )
    os.close(writing)
    stderr = os.fdopen(reading, "r", errors="replace")
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = _readline(stderr)
            if not line:
                pytest.fail("serve exited early:\n" + "".join(lines))
            lines.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        yield f"http://127.0.0.1:{port}", lines
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
        while line := _readline(stderr):
            lines.append(line)
        stderr.close()
        assert child.returncode == 0, "".join(lines)


def _readline(stream: TextIO) -> str:
    try:
        return stream.readline()
    except OSError:  # a pty whose other end has closed
        return ""


@pytest.fixture
def server(env: dict[str, str], clean_environment: Path) -> Iterator[tuple[str, list[str]]]:
    """`tradeguard serve` at a terminal; yields its URL and the lines of its stderr so far."""
    with running_serve(env, clean_environment, terminal=True) as running:
        yield running
