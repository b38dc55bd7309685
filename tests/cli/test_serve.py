"""`tradeguard serve` and `tradeguard users create-admin`, as real child processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pyotp
from tests.cli.conftest import child_env, running_serve
from tests.conftest import CliRunner

PASSWORD = "orbit velvet marmalade 9"


def test_serve_prints_a_setup_token_that_creates_the_first_admin_once(
    server: tuple[str, list[str]],
) -> None:
    url, lines = server
    printed = "".join(lines)
    match = re.search(r'"token": "([A-Za-z0-9_-]{43})"', printed)
    assert match, printed
    assert "/api/setup" in printed
    assert "curl" in printed
    token = match.group(1)
    assert printed.count(token) == 1  # on the terminal once; no log line carries it
    body = {"token": token, "name": "root", "email": "root@example.com", "password": PASSWORD}
    with httpx.Client(base_url=url) as client:
        health = client.get("/api/health")
        assert health.json() == {"status": "ok"}
        assert "server" not in health.headers  # no Server header
        created = client.post("/api/setup", json=body)
        assert created.status_code == 201, created.text
        assert client.post("/api/setup", json=body).status_code == 409


def test_without_a_terminal_serve_prints_no_setup_token(
    env: dict[str, str], clean_environment: Path
) -> None:
    """Under systemd stderr is the journal: the token would sit in a log."""
    with running_serve(env, clean_environment, terminal=False) as (url, lines):
        assert httpx.get(f"{url}/api/health").status_code == 200
    printed = "".join(lines)
    assert "tradeguard users create-admin" in printed
    assert '"token"' not in printed
    assert not re.search(r"[A-Za-z0-9_-]{43}", printed)


def test_serve_refuses_plain_http_on_a_network_address(cli: CliRunner, env: dict[str, str]) -> None:
    result = cli("serve", "--host", "0.0.0.0", env=env)  # noqa: S104 - refused
    assert result.code == 2
    assert "refusing to serve plain HTTP on 0.0.0.0" in result.stderr
    assert "TRADEGUARD_TRUSTED_PROXIES" in result.stderr
    assert not (Path(env["TRADEGUARD_DATA_DIR"]) / "tradeguard.db").exists()


def test_serve_refuses_http_public_url_in_production(cli: CliRunner, env: dict[str, str]) -> None:
    result = cli("serve", env={**env, "TRADEGUARD_ENV": "production"})
    assert result.code == 2
    assert "production needs https://" in result.stderr


def test_serve_refuses_a_tls_key_others_can_read(
    cli: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not used\n")
    key.write_text("not used\n")
    os.chmod(key, 0o644)
    tls = {"TRADEGUARD_TLS_CERT_FILE": str(cert), "TRADEGUARD_TLS_KEY_FILE": str(key)}
    result = cli("serve", "--host", "0.0.0.0", env={**env, **tls})  # noqa: S104
    assert result.code == 2
    assert "TRADEGUARD_TLS_KEY_FILE" in result.stderr
    assert "chmod 600" in result.stderr
    only_one = cli("serve", env={**env, "TRADEGUARD_TLS_CERT_FILE": str(cert)})
    assert only_one.code == 2
    assert "set both" in only_one.stderr


def test_create_admin_enrols_totp_and_prints_backup_codes_once(
    env: dict[str, str], clean_environment: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tradeguard", "users", "create-admin", "root",
         "--email", "root@example.com"],
        cwd=clean_environment,
        env=child_env(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(PASSWORD + "\n")
    child.stdin.flush()
    shown = ""
    while "otpauth://" not in shown:
        line = child.stdout.readline()
        assert line, f"no otpauth URI; stderr: {child.communicate(timeout=30)[1]}"
        shown += line
    secret = re.search(r"secret=([A-Z2-7]+)", shown)
    assert secret
    child.stdin.write("000000\n")  # a wrong code first: asked again
    child.stdin.write(pyotp.TOTP(secret.group(1)).now() + "\n")
    child.stdin.flush()
    rest, errors = child.communicate(timeout=60)
    assert child.returncode == 0, errors
    assert "wrong or expired" in errors
    assert "Admin root created, with two-factor authentication on." in rest
    codes = re.findall(r"^  ([0-9a-z]{4}(?:-[0-9a-z]{4}){5})$", rest, flags=re.MULTILINE)
    assert len(set(codes)) == 10
    assert PASSWORD not in shown + rest + errors


def test_create_admin_refuses_a_weak_password_and_creates_nothing(
    cli: CliRunner, env: dict[str, str]
) -> None:
    weak = cli("users", "create-admin", "root", "--email", "root@example.com",
               env=env, input="password1234\n")  # fmt: skip
    assert weak.code == 1
    assert "password" in weak.stderr
    listed = cli("users", "list", env=env)
    assert "root" not in listed.stdout
