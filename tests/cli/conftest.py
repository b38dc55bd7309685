"""Fixtures for commands that need a running `tradeguard serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def server(env: dict[str, str], clean_environment: Path) -> Iterator[tuple[str, list[str]]]:
    """`tradeguard serve` on a free port; yields its URL and the lines of its stderr so far."""
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "tradeguard", "serve", "--port", str(port)],
        cwd=clean_environment,
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = child.stderr.readline() if child.stderr else ""
            if not line:
                pytest.fail("serve exited early:\n" + "".join(lines))
            lines.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        yield url, lines
    finally:
        child.send_signal(signal.SIGTERM)
        rest, _ = child.communicate(timeout=30)
        lines.append(rest or "")
        assert child.returncode == 0, "".join(lines)
