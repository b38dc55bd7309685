"""Fixtures for the bot tests: a bot virtualenv holding the SDK (built once per session), and
the sandbox's support on this host (without it, sandbox tests skip, except under CI=true, where
they fail)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from tests.conftest import IN_CI, CliRunner, audit_key_env

from tradeguard.bots.sandbox import Support, probe
from tradeguard.bots.venvs import create_venv, install_sdk
from tradeguard.vault.master import init_keyring_file


@pytest.fixture(scope="session")
def sdk_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bot virtualenv with the SDK installed and nothing else. Tests must not change it."""
    venv = create_venv(tmp_path_factory.mktemp("bot-venv") / "venv")
    install_sdk(venv)
    return venv


@pytest.fixture(scope="session")
def sandbox_support() -> Support:
    support = probe()
    if not support.ok:
        assert support.reason is not None
        if IN_CI:
            pytest.fail(f"{support.reason} (CI=true: sandbox tests must run)")
        pytest.skip(support.reason)
    return support


@pytest.fixture
def bot_cli(cli: CliRunner, tmp_path: Path, sandbox_support: Support) -> CliRunner:
    """The real command with a data dir, a runtime dir, a master keyring and audit keys in
    `tmp_path`, on a host that can sandbox bots."""
    runtime = Path(tempfile.mkdtemp(dir="/tmp"))  # a socket path has 107 bytes at most
    keyring = tmp_path / "master.keyring"
    init_keyring_file(keyring)
    cli.env.update(
        {
            "TRADEGUARD_DATA_DIR": str(tmp_path / "data"),
            "TRADEGUARD_RUNTIME_DIR": str(runtime),
            "TRADEGUARD_MASTER_KEY_FILE": str(keyring),
            **audit_key_env(tmp_path),
        }
    )
    return cli
