"""The `tradeguard` command: version, db upgrade, bad input, crash reports."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import CliRunner, Run

import tradeguard
from tradeguard.store.schema import head_revision


def _one_error_line(run: Run) -> str:
    assert run.code == 2, run.output
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_version(cli: CliRunner) -> None:
    run = cli("--version")
    assert (run.code, run.stdout.strip()) == (0, f"tradeguard {tradeguard.__version__}")


def test_db_upgrade_creates_a_private_store_even_under_umask_0(
    cli: CliRunner, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    run = cli("db", "upgrade", env={"TRADEGUARD_DATA_DIR": str(data)}, umask=0)
    assert run.code == 0, run.output
    assert f"upgraded from empty to schema revision {head_revision()}" in run.stdout
    assert data.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in data.iterdir()} == {"tradeguard.db": 0o600}
    again = cli("db", "upgrade", env={"TRADEGUARD_DATA_DIR": str(data)})
    assert f"already at schema revision {head_revision()}" in again.stdout


@pytest.mark.postgres
def test_db_upgrade_on_postgres(cli: CliRunner, postgres_schema_url: str, tmp_path: Path) -> None:
    env = {"TRADEGUARD_DATABASE_URL": postgres_schema_url, "TRADEGUARD_DATA_DIR": str(tmp_path)}
    run = cli("db", "upgrade", env=env)
    assert run.code == 0, run.output
    assert "PostgreSQL postgresql+psycopg://postgres@127.0.0.1" in run.stdout


def test_a_group_readable_secret_file_stops_with_the_chmod(cli: CliRunner, tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text(f"sqlite:///{tmp_path}/x.db")
    secret.chmod(0o640)
    data = tmp_path / "data"
    env = {"TRADEGUARD_DATABASE_URL_FILE": str(secret), "TRADEGUARD_DATA_DIR": str(data)}
    line = _one_error_line(cli("db", "upgrade", env=env))
    assert line.endswith(f"run: chmod 600 {secret}")
    assert not data.exists()
    assert not (tmp_path / "x.db").exists()


def test_a_bad_database_url_stops_without_echoing_it(cli: CliRunner, tmp_path: Path) -> None:
    password = secrets.token_urlsafe(10)
    data = tmp_path / "data"
    env = {
        "TRADEGUARD_DATABASE_URL": f"postgresql://tg:{password}@",
        "TRADEGUARD_DATA_DIR": str(data),
    }
    run = cli("db", "upgrade", env=env)
    assert "names no database" in _one_error_line(run)
    assert password not in run.output
    assert not data.exists()


def test_an_unwritable_data_dir_stops(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    env = {"TRADEGUARD_DATA_DIR": str(tmp_path / "a-file" / "data")}
    assert "set TRADEGUARD_DATA_DIR" in _one_error_line(cli("db", "upgrade", env=env))


def test_an_open_data_dir_stops_and_nothing_is_created_in_it(
    cli: CliRunner, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    line = _one_error_line(cli("db", "upgrade", env={"TRADEGUARD_DATA_DIR": str(data)}))
    assert line.endswith(f"run: chmod 700 {data}")
    assert list(data.iterdir()) == []


def test_a_database_from_a_newer_version_stops_untouched(cli: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"TRADEGUARD_DATA_DIR": str(data)}
    assert cli("db", "upgrade", env=env).code == 0
    db = data / "tradeguard.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    line = _one_error_line(cli("db", "upgrade", env=env))
    assert "revision ffff" in line
    assert "upgrade tradeguard" in line
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("ffff",)


def test_unsafe_production_settings_stop(cli: CliRunner, tmp_path: Path) -> None:
    env = {
        "TRADEGUARD_ENV": "production",
        "TRADEGUARD_LOG_LEVEL": "DEBUG",
        "TRADEGUARD_DATA_DIR": str(tmp_path / "d"),
    }
    assert "DEBUG is refused in production" in _one_error_line(cli("db", "upgrade", env=env))
    assert not (tmp_path / "d").exists()


_CRASH = """
import sys
from tradeguard.cli.main import app, main

@app.command("boom")
def boom() -> None:
    exchange_api_secret = "{secret}"
    params = {{"symbol": "BTC/USDT", "apiKey": "{key}"}}
    raise KeyError("unexpected reply")

main(["boom"])
"""


_PROCESS_STATE = """
import os, resource
from tradeguard.cli.main import app, main

@app.command("state")
def state() -> None:
    print(oct(os.umask(0)), resource.getrlimit(resource.RLIMIT_CORE))

main(["state"])
"""


def test_every_run_is_private_and_cannot_dump_core(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROCESS_STATE],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        umask=0o022,
        check=False,
    )
    assert done.stdout.split(maxsplit=1) == ["0o77", "(0, 0)\n"]


def test_a_crash_prints_a_report_without_secrets_and_exits_1(tmp_path: Path) -> None:
    secret, key = secrets.token_hex(32), secrets.token_hex(16)
    done = subprocess.run(
        [sys.executable, "-c", _CRASH.format(secret=secret, key=key)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    assert "KeyError: 'unexpected reply'" in done.stderr
    assert "exchange_api_secret = [REDACTED:local]" in done.stderr
    assert "'symbol': 'BTC/USDT'" in done.stderr  # locals are shown, scrubbed
    assert "a bug" in done.stderr
    assert secret not in done.stderr + done.stdout
    assert key not in done.stderr + done.stdout
