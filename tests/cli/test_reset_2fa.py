"""`tradeguard users reset-2fa`: the operator's way around a lost second factor, audited."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from tests.conftest import CliRunner

from tradeguard.auth.accounts import Role
from tradeguard.auth.service import StepUp
from tradeguard.config import load_settings
from tradeguard.core.errors import TokenInvalid
from tradeguard.secrets import Password
from tradeguard.web.runtime import open_context

PASSWORD = "orbit velvet marmalade 9"
REASON = "bob phoned from his known number; video call matched his badge photo"


def _enrolled_session(env: dict[str, str]) -> str:
    """bob, with TOTP on, and an access token of a live session of his."""
    with open_context(load_settings(data_dir=Path(env["TRADEGUARD_DATA_DIR"]))) as ctx:
        ctx.accounts.create_account("bob", "bob@example.com", Password(PASSWORD), Role.TRADER,
                                    actor="operator")  # fmt: skip
        login = ctx.accounts.login("bob", Password(PASSWORD), code=None, ip="198.51.100.7",
                                   user_agent=None)  # fmt: skip
        principal = ctx.accounts.authenticate(login.access_token)
        enrolment = ctx.accounts.begin_totp(
            principal, StepUp(password=Password(PASSWORD)), "1.2.3.4"
        )
        secret = enrolment.uri.split("secret=")[1].split("&")[0]
        ctx.accounts.confirm_totp(principal, pyotp.TOTP(secret).now())
        return login.access_token


def test_reset_removes_the_factor_ends_sessions_and_is_audited(
    cli: CliRunner, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    token = _enrolled_session(env)
    done = cli("users", "reset-2fa", "bob", "--reason", REASON, env=env)
    assert done.code == 0, done.output
    assert "must enrol again" in done.stdout
    with open_context(load_settings(data_dir=Path(env["TRADEGUARD_DATA_DIR"]))) as ctx:
        bob = ctx.accounts.account(ctx.vault.user("bob").id)
        assert not bob.totp_enabled
        assert bob.totp_secret is None
        with pytest.raises(TokenInvalid):
            ctx.accounts.authenticate(token)
        with ctx.engine.connect() as conn:
            codes = conn.execute(sa.text("SELECT count(*) FROM auth_backup_codes")).scalar_one()
            events = conn.execute(
                sa.text("SELECT details FROM audit_log WHERE event = 'auth.2fa.disabled'")
            ).scalars().all()  # fmt: skip
    assert codes == 0
    assert len(events) == 1
    assert REASON in str(events[0])
    again = cli("users", "reset-2fa", "bob", "--reason", REASON, env=env)
    assert again.code == 1
    assert "no second factor to reset" in again.stderr


def test_a_missing_reason_or_user_changes_nothing(cli: CliRunner, env: dict[str, str]) -> None:
    short = cli("users", "reset-2fa", "bob", "--reason", "asked", env=env)
    assert short.code == 2
    assert "how you checked" in short.output
    unknown = cli("users", "reset-2fa", "nobody", "--reason", REASON, env=env)
    assert unknown.code == 2
    assert "no user named 'nobody'" in unknown.stderr
