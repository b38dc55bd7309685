"""`tradeguard demo`, which `make demo` runs: a fresh installation, checked, nothing faked."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import CliRunner


def test_demo_sets_up_a_fresh_private_installation(cli: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "demo"
    run = cli("demo", "--data-dir", str(data))
    assert run.code == 0, run.output
    assert f"Demo installation: {data}" in run.stdout
    assert "database schema" in run.stdout
    assert "(this version)" in run.stdout
    assert "user demo (service mode), credential paper-main on paper" in run.stdout
    assert "vault verify: 1/1 ok" in run.stdout
    assert (data / "master-keyring.json").stat().st_mode & 0o777 == 0o600
    assert "what `make demo` will show" in run.stdout
    assert "nothing above is" in run.stdout
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "tradeguard.db").stat().st_mode & 0o777 == 0o600


def test_demo_uses_a_new_temporary_dir_by_default(cli: CliRunner) -> None:
    run = cli("demo")
    assert run.code == 0, run.output
    line = next(x for x in run.stdout.splitlines() if x.startswith("Demo installation: "))
    path = Path(line.removeprefix("Demo installation: "))
    assert path.name.startswith("tradeguard-demo-")
    assert (path / "tradeguard.db").exists()


def test_demo_ignores_a_configured_database(cli: CliRunner, tmp_path: Path) -> None:
    env = {"TRADEGUARD_DATABASE_URL": "postgresql://nobody@192.0.2.1/prod"}
    run = cli("demo", "--data-dir", str(tmp_path / "demo"), env=env)
    assert run.code == 0, run.output
    assert (tmp_path / "demo" / "tradeguard.db").exists()


def test_demo_refuses_a_directory_that_is_not_fresh(cli: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "used"
    data.mkdir(mode=0o700)
    (data / "something").write_text("x")
    run = cli("demo", "--data-dir", str(data))
    assert run.code == 2
    assert "needs a fresh data directory" in run.stderr


def test_demo_refuses_to_run_in_production(cli: CliRunner, tmp_path: Path) -> None:
    run = cli("demo", "--data-dir", str(tmp_path / "d"), env={"TRADEGUARD_ENV": "production"})
    assert run.code == 2
    assert "TRADEGUARD_DEMO=true is refused in production" in run.stderr
