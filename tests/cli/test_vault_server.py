"""`tradeguard vault unlock` and `vault lock`: a password-mode vault opened and closed in the
running server, from the command line, as its user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.cli.conftest import child_env

from tradeguard.auth.accounts import Role
from tradeguard.config import load_settings
from tradeguard.secrets import Password
from tradeguard.web.runtime import open_context

LOGIN = "orbit velvet marmalade login 7"
VAULT = "copper lantern tundra vault 9"


def _create_alice(env: dict[str, str]) -> None:
    with open_context(load_settings(data_dir=Path(env["TRADEGUARD_DATA_DIR"]))) as ctx:
        ctx.accounts.create_account(
            "alice", "alice@example.com", Password(LOGIN), Role.TRADER, actor="operator",
            vault_password=Password(VAULT),
        )  # fmt: skip


def _vault(url: str) -> dict[str, object]:
    with httpx.Client(base_url=url) as client:
        login = client.post("/api/auth/login", json={"login": "alice", "password": LOGIN})
        token = login.json()["access_token"]
        state = client.get("/api/vault", headers={"Authorization": f"Bearer {token}"}).json()
        assert isinstance(state, dict)
        return state


def _run(
    env: dict[str, str], cwd: Path, *args: str, stdin: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradeguard", "vault", *args],
        cwd=cwd, env=child_env(env), input=stdin, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_unlock_and_lock_a_vault_in_the_running_server(
    env: dict[str, str],
    server: tuple[str, list[str]],
    clean_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = server
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _create_alice(env)
    assert _vault(url) == {"mode": "password", "unlocked": False}

    wrong = _run(env, clean_environment, "unlock", "--user", "alice", "--server", url,
                 stdin=f"{LOGIN}\nnot the vault password\n")  # fmt: skip
    assert wrong.returncode == 1
    assert "wrong vault password" in wrong.stderr
    assert VAULT not in wrong.stdout + wrong.stderr

    opened = _run(env, clean_environment, "unlock", "--user", "alice", "--server", url,
                  stdin=f"{LOGIN}\n{VAULT}\n")  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert _vault(url) == {"mode": "password", "unlocked": True}

    locked = _run(env, clean_environment, "lock", "--user", "alice", "--server", url,
                  stdin=f"{LOGIN}\n")  # fmt: skip
    assert locked.returncode == 0, locked.stderr
    assert _vault(url) == {"mode": "password", "unlocked": False}


def test_a_wrong_login_or_no_server_is_one_clear_line(
    env: dict[str, str], server: tuple[str, list[str]], clean_environment: Path
) -> None:
    url, _ = server
    refused = _run(env, clean_environment, "lock", "--user", "alice", "--server", url,
                   stdin="some wrong password\n")  # fmt: skip
    assert refused.returncode == 1
    assert "wrong name or password" in refused.stderr
    nobody = _run(env, clean_environment, "lock", "--user", "alice",
                  "--server", "http://127.0.0.1:9", stdin="x\n")  # fmt: skip
    assert nobody.returncode == 2
    assert "cannot reach the server at http://127.0.0.1:9" in nobody.stderr
    clear = _run(env, clean_environment, "lock", "--user", "alice",
                 "--server", "http://trade.example.com", stdin="x\n")  # fmt: skip
    assert clear.returncode == 2
    assert "plain http to another machine" in clear.stderr
