"""`tradeguard doctor`: a row per check, the fix in each failing row, exit 1 on any fail."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from tests.conftest import CliRunner

from tradeguard.store.schema import head_revision


def _doctor(cli: CliRunner, env: dict[str, str]) -> tuple[int, dict[str, tuple[str, str]]]:
    """Run `doctor --json`; the exit code and {check: (status, details)}."""
    run = cli("doctor", "--json", env=env)
    rows = {c["name"]: (c["status"], c["detail"]) for c in json.loads(run.stdout)}
    return run.code, rows


def test_a_fresh_host_passes_with_warnings_and_doctor_creates_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    code, rows = _doctor(cli, {"TRADEGUARD_DATA_DIR": str(data)})
    assert code == 0
    assert rows["data directory"][0] == "warn"
    assert rows["database schema"] == ("warn", "no database yet; run: tradeguard db upgrade")
    assert rows["settings"][0] == "pass"
    assert rows["log redaction"] == ("pass", "guard phase in C (secrets/_guard.c)")
    assert not data.exists()


def test_after_db_upgrade_the_store_rows_pass(cli: CliRunner, tmp_path: Path) -> None:
    env = {"TRADEGUARD_DATA_DIR": str(tmp_path / "data")}
    assert cli("db", "upgrade", env=env).code == 0
    db = tmp_path / "data" / "tradeguard.db"
    before = db.stat().st_mtime_ns, db.read_bytes()
    _, rows = _doctor(cli, env)
    assert rows["data directory"][0] == "pass"
    assert rows["database files"][0] == "pass"
    assert rows["database schema"] == ("pass", f"at revision {head_revision()} (this version)")
    assert (db.stat().st_mtime_ns, db.read_bytes()) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when the suite runs as root")
def test_root_is_a_warning(cli: CliRunner) -> None:
    assert _doctor(cli, {})[1]["running user"][0] == "warn"


def test_every_problem_is_its_own_failing_row_with_its_fix(
    cli: CliRunner, clean_environment: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert cli("db", "upgrade", env={"TRADEGUARD_DATA_DIR": str(data)}).code == 0
    data.chmod(0o750)
    (data / "tradeguard.db").chmod(0o644)
    secret = tmp_path / "url"
    secret.write_text(f"sqlite:///{data}/tradeguard.db")
    secret.chmod(0o644)
    (clean_environment / ".env").write_text("TRADEGUARD_LOG_LEVEL=INFO\n")
    env = {
        "TRADEGUARD_ENV": "production",
        "TRADEGUARD_LOG_LEVEL": "DEBUG",
        "TRADEGUARD_SANDBOX": "off",
        "TRADEGUARD_DATA_DIR": str(data),
        "TRADEGUARD_DATABASE_URL_FILE": str(secret),
    }
    code, rows = _doctor(cli, env)
    assert code == 1
    assert rows[".env file"][0] == "fail"
    status, detail = rows["TRADEGUARD_DATABASE_URL_FILE"]
    assert status == "fail"
    assert detail.endswith(
        f"{secret} has mode 0644, so group or others can access it; run: chmod 600 {secret}"
    )
    # The secret file is unusable, so settings fail; fix it and look again.
    assert rows["settings"][0] == "fail"
    secret.chmod(0o600)
    _, rows = _doctor(cli, env)
    assert rows["log level"][0] == "fail"
    assert "DEBUG is refused" in rows["log level"][1]
    assert rows["bot sandbox"][0] == "fail"
    status, detail = rows["data directory"]
    assert status == "fail"
    assert detail.endswith(
        f"{data} has mode 0750, so group or others can access it; run: chmod 700 {data}"
    )
    assert rows["database files"][0] == "fail"
    assert "chmod 600" in rows["database files"][1]
    assert rows["API setup"][0] == "fail"  # production needs an https:// public URL
    assert "TRADEGUARD_PUBLIC_URL" in rows["API setup"][1]
    assert rows["breached passwords"][0] == "warn"
    assert rows["reset mail"][0] == "warn"


def test_the_api_rows_pass_behind_a_trusted_proxy(cli: CliRunner, tmp_path: Path) -> None:
    everywhere = "0.0.0.0"  # noqa: S104 - the setting under test, never bound
    env = {"TRADEGUARD_DATA_DIR": str(tmp_path / "data"), "TRADEGUARD_HTTP_HOST": everywhere}
    _, rows = _doctor(cli, env)
    assert rows["API setup"][0] == "fail"  # plain HTTP on every interface
    assert "TRADEGUARD_TRUSTED_PROXIES" in rows["API setup"][1]
    _, rows = _doctor(cli, {**env, "TRADEGUARD_TRUSTED_PROXIES": '["10.0.0.2"]'})
    assert rows["API setup"] == ("pass", "0.0.0.0:8000 as http://127.0.0.1:8000")


def test_a_newer_schema_fails(cli: CliRunner, tmp_path: Path) -> None:
    env = {"TRADEGUARD_DATA_DIR": str(tmp_path / "data")}
    assert cli("db", "upgrade", env=env).code == 0
    with sqlite3.connect(tmp_path / "data" / "tradeguard.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'abcd'")
    code, rows = _doctor(cli, env)
    assert code == 1
    assert rows["database schema"][0] == "fail"


def test_a_remote_postgres_without_verified_tls_warns_in_dev(
    cli: CliRunner, tmp_path: Path
) -> None:
    env = {
        "TRADEGUARD_DATA_DIR": str(tmp_path),
        "TRADEGUARD_DATABASE_URL": "postgresql://tg@192.0.2.10/tg?connect_timeout=1",
    }
    _, rows = _doctor(cli, env)
    assert rows["database TLS"][0] == "warn"
    assert "sslmode=verify-full" in rows["database TLS"][1]
    assert rows["database schema"][0] == "fail"


def test_the_table_shows_every_check_with_its_status(cli: CliRunner, tmp_path: Path) -> None:
    env = {"TRADEGUARD_DATA_DIR": str(tmp_path / "data")}
    _, rows = _doctor(cli, env)
    table = cli("doctor", env=env).stdout
    assert "tradeguard doctor" in table
    assert "details / how to fix" in table
    for name, (status, _) in rows.items():
        assert any(name in line and status in line for line in table.splitlines()), name
    counts = [sum(s == want for s, _ in rows.values()) for want in ("pass", "warn", "fail")]
    assert f"{counts[0]} pass, {counts[1]} warn, {counts[2]} fail" in table
