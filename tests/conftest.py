"""Fixtures shared by the whole suite.

Every test starts from a clean slate: no TRADEGUARD_* variables inherited from the shell, a
private temporary working directory (so no stray .env is read) and XDG_DATA_HOME inside it.

PostgreSQL tests use the server at TG_TEST_POSTGRES_URL (default: the local trust-auth server,
database `test`), each in a schema of its own that is dropped afterwards. When the server is
unreachable they skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tradeguard.audit import AUDIT_KEY
from tradeguard.crypto.keyring_file import init_keyring_file
from tradeguard.secrets import Secret
from tradeguard.store import DatabaseTarget, resolve_database

POSTGRES_URL = os.environ.get(
    "TG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("TRADEGUARD_"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return workdir


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_or_skip() -> str:
    """The PostgreSQL URL, after checking the server answers; skip (or fail in CI) if not."""
    try:
        psycopg.connect(_libpq_url(POSTGRES_URL), connect_timeout=3).close()
    except psycopg.OperationalError as e:
        reason = f"PostgreSQL at {make_url(POSTGRES_URL).host} unreachable: {e}".splitlines()[0]
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections live in a fresh, empty schema of the test database."""
    base = postgres_or_skip()
    schema = f"tg_{secrets.token_hex(6)}"
    with psycopg.connect(_libpq_url(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_libpq_url(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseTarget:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        data_dir = tmp_path / "data"
        data_dir.mkdir(mode=0o700)
        return resolve_database(None, data_dir, production=False)
    url = request.getfixturevalue("postgres_schema_url")
    return resolve_database(Secret(url), tmp_path, production=False)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def audit_key_env(directory: Path) -> dict[str, str]:
    """A fresh audit keyring file in `directory`, as the variable that names it: every command
    that changes something writes the audit log, and refuses without a key."""
    path = directory / "audit.keyring"
    if not path.exists():
        init_keyring_file(path)
    return {AUDIT_KEY.file_variable: str(path)}


@pytest.fixture
def cli(clean_environment: Path) -> CliRunner:
    return CliRunner(clean_environment)


class CliRunner:
    """Runs the real `tradeguard` command in a child process, with a clean environment (plus
    `env`, for every run) and standard input from a pipe, never the terminal."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.env = dict(env or {})

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        umask: int | None = None,
        input: str = "",
    ) -> Run:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGUARD_")}
        child_env.update({"COLUMNS": "200", "NO_COLOR": "1", **self.env, **(env or {})})
        result = subprocess.run(
            [sys.executable, "-m", "tradeguard", *args],
            cwd=self.cwd,
            env=child_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            umask=-1 if umask is None else umask,
            check=False,
        )
        return Run(result.returncode, result.stdout, result.stderr)


class Capture(logging.Handler):
    """A handler that formats records like a real one and keeps the text and the records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.stream = io.StringIO()
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.stream.write(self.format(record) + "\n")

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Every record of every logger, at DEBUG, on the root logger."""
    handler = Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
