"""Fixtures for the bot tests: a bot virtualenv holding the SDK (built once per session), and
the sandbox's support on this host (without it, sandbox tests skip, except under CI=true, where
they fail)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import IN_CI

from tradeguard.bots.sandbox import Support, probe
from tradeguard.bots.venvs import create_venv, install_sdk


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
