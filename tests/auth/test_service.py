"""The account service itself, where HTTP adds nothing: what is stored, what two instances
see of each other, session limits, rehashing, and the account changes behind step-up."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from tests.conftest import audit_key_env

from tradeguard.auth.accounts import Role
from tradeguard.auth.service import PRINCIPAL_RECHECK_S, LoginResult, Principal, StepUp
from tradeguard.auth.sessions import MAX_SESSIONS
from tradeguard.config import load_settings
from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import (
    Conflict,
    Forbidden,
    InvalidCode,
    LoginFailed,
    NotFound,
    Throttled,
    TokenInvalid,
)
from tradeguard.secrets import Password
from tradeguard.vault.master import FILE_VARIABLE, init_keyring_file
from tradeguard.web.context import AppContext
from tradeguard.web.runtime import open_context

IP = "198.51.100.7"


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    init_keyring_file(keys / "master.keyring")
    monkeypatch.setenv(FILE_VARIABLE, str(keys / "master.keyring"))
    for name, value in audit_key_env(keys).items():
        monkeypatch.setenv(name, value)
    return tmp_path / "data"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@contextmanager
def instance(data_dir: Path, clock: ManualClock, **settings: Any) -> Iterator[AppContext]:
    with open_context(load_settings(data_dir=data_dir, **settings), clock=clock) as ctx:
        yield ctx


@pytest.fixture
def ctx(installation: Path, clock: ManualClock) -> Iterator[AppContext]:
    with instance(installation, clock) as ctx:
        yield ctx


def _password() -> str:
    return f"tg {secrets.token_urlsafe(18)}"


def _account(ctx: AppContext, role: Role = Role.TRADER) -> tuple[str, str]:
    name, password = f"u{secrets.token_hex(4)}", _password()
    ctx.accounts.create_account(name, f"{name}@example.com", Password(password), role, actor="t")
    return name, password


def _login(ctx: AppContext, name: str, password: str, code: str | None = None) -> LoginResult:
    return ctx.accounts.login(name, Password(password), code=code, ip=IP, user_agent="pytest")


def _principal(ctx: AppContext, result: LoginResult) -> Principal:
    return ctx.accounts.authenticate(result.access_token)


def _enrol(ctx: AppContext, clock: ManualClock, principal: Principal, password: str) -> pyotp.TOTP:
    enrolment = ctx.accounts.begin_totp(principal, StepUp(password=Password(password)), IP)
    secret = enrolment.uri.split("secret=")[1].split("&")[0]
    totp = pyotp.TOTP(secret)
    ctx.accounts.confirm_totp(principal, totp.at(clock.now()))
    return totp


def test_no_password_or_second_factor_secret_is_stored_in_clear(
    ctx: AppContext, clock: ManualClock, installation: Path
) -> None:
    name, password = _account(ctx)
    principal = _principal(ctx, _login(ctx, name, password))
    totp = _enrol(ctx, clock, principal, password)
    ctx.engine.dispose()
    raw = b"".join(p.read_bytes() for p in installation.glob("tradeguard.db*"))
    assert password.encode() not in raw
    assert totp.secret.encode() not in raw
    with ctx.engine.connect() as conn:
        phc = conn.execute(sa.text("SELECT password_hash FROM users WHERE name = :n"), {"n": name})
        assert phc.scalar_one().startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_a_new_login_past_the_limit_ends_the_oldest_session(
    ctx: AppContext, clock: ManualClock
) -> None:
    name, password = _account(ctx)
    first = _login(ctx, name, password)
    for _ in range(MAX_SESSIONS):
        clock.advance(1)
        last = _login(ctx, name, password)
    with pytest.raises(TokenInvalid):
        ctx.accounts.authenticate(first.access_token)
    assert len(ctx.accounts.live_sessions(_principal(ctx, last))) == MAX_SESSIONS


def test_another_instance_sees_a_logout_within_the_recheck_interval(
    installation: Path, clock: ManualClock
) -> None:
    with instance(installation, clock) as first, instance(installation, clock) as second:
        name, password = _account(first)
        result = _login(first, name, password)
        second.accounts.authenticate(result.access_token)  # remembered by the second
        first.accounts.logout(_principal(first, result))
        with pytest.raises(TokenInvalid):  # the first forgets at once
            first.accounts.authenticate(result.access_token)
        second.accounts.authenticate(result.access_token)  # the second, not yet
        clock.advance(PRINCIPAL_RECHECK_S)
        with pytest.raises(TokenInvalid):
            second.accounts.authenticate(result.access_token)


def test_a_disabled_account_is_refused_at_once_in_this_instance(ctx: AppContext) -> None:
    admin_name, admin_password = _account(ctx, Role.ADMIN)
    admin = _principal(ctx, _login(ctx, admin_name, admin_password))
    with pytest.raises(Forbidden, match="two-factor"):  # admin power needs a second factor
        ctx.accounts.set_disabled(admin, admin.account.id + 1, True)
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    totp = _enrol(ctx, clock, admin, admin_password)
    clock.advance(30)
    admin = _principal(ctx, _login(ctx, admin_name, admin_password, totp.at(clock.now())))
    name, password = _account(ctx)
    victim = _login(ctx, name, password)
    ctx.accounts.authenticate(victim.access_token)
    ctx.accounts.set_disabled(admin, _principal(ctx, victim).account.id, True)
    with pytest.raises(TokenInvalid):
        ctx.accounts.authenticate(victim.access_token)


def test_a_password_hash_is_upgraded_at_login_when_the_parameters_rise(
    installation: Path, clock: ManualClock
) -> None:
    with instance(installation, clock) as ctx:
        name, password = _account(ctx)
    with instance(installation, clock, password_memory_kib=24576) as ctx:
        _login(ctx, name, password)
        with ctx.engine.connect() as conn:
            phc = conn.execute(
                sa.text("SELECT password_hash FROM users WHERE name = :n"), {"n": name}
            ).scalar_one()
    assert "$m=24576,t=2,p=1$" in phc
    with instance(installation, clock, password_memory_kib=24576) as ctx:
        _login(ctx, name, password)  # and it still verifies


def test_a_user_ends_another_of_their_sessions_with_a_fresh_proof(ctx: AppContext) -> None:
    name, password = _account(ctx)
    phone, laptop = _login(ctx, name, password), _login(ctx, name, password)
    me = _principal(ctx, laptop)
    with pytest.raises(InvalidCode):
        ctx.accounts.end_session(me, phone.session.id, StepUp(password=Password("wrong")), IP)
    ctx.accounts.authenticate(phone.access_token)
    ctx.accounts.end_session(me, phone.session.id, StepUp(password=Password(password)), IP)
    with pytest.raises(TokenInvalid):
        ctx.accounts.authenticate(phone.access_token)
    ctx.accounts.authenticate(laptop.access_token)


def test_nobody_ends_another_users_session(ctx: AppContext) -> None:
    alice, alice_pw = _account(ctx)
    bob, bob_pw = _account(ctx)
    alices = _login(ctx, alice, alice_pw)
    bob_principal = _principal(ctx, _login(ctx, bob, bob_pw))
    with pytest.raises(NotFound):
        ctx.accounts.end_session(
            bob_principal, alices.session.id, StepUp(password=Password(bob_pw)), IP
        )
    ctx.accounts.authenticate(alices.access_token)


def test_an_email_change_needs_a_fresh_proof_and_a_free_address(ctx: AppContext) -> None:
    name, password = _account(ctx)
    other, _ = _account(ctx)
    me = _principal(ctx, _login(ctx, name, password))
    with pytest.raises(InvalidCode):
        ctx.accounts.change_email(me, "new@example.com", StepUp(password=Password("nope")), IP)
    with pytest.raises(Conflict):
        ctx.accounts.change_email(
            me, f"{other}@example.com", StepUp(password=Password(password)), IP
        )
    account = ctx.accounts.change_email(
        me, " New@Example.com ", StepUp(password=Password(password)), IP
    )
    assert account.email == "new@example.com"


def test_a_flood_of_throttled_guesses_reads_nothing_from_the_store(ctx: AppContext) -> None:
    """Throttling must be cheaper than the attack: once a name's known addresses are in memory,
    a guess from a new address that the throttles refuse costs no database read."""
    name, _ = _account(ctx)
    statements: list[str] = []
    sa.event.listen(ctx.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    throttled_reads = []
    for n in range(60):  # 60 addresses, one guess each: only the new-address budgets bite
        before = len(statements)
        try:
            ctx.accounts.login(name, Password("wrong guess at all"), code=None,
                               ip=f"203.0.113.{n}", user_agent=None)  # fmt: skip
        except Throttled:
            throttled_reads.append(len(statements) - before)
        except LoginFailed:
            pass
    assert len(throttled_reads) > 30
    assert set(throttled_reads) == {0}


def test_the_password_hash_is_not_in_an_accounts_repr(ctx: AppContext) -> None:
    name, password = _account(ctx)
    principal = _principal(ctx, _login(ctx, name, password))
    assert "argon2" not in repr(principal)
    assert "password_hash" not in repr(principal.account)


def test_a_wrong_code_after_the_right_password_is_audited(
    ctx: AppContext, clock: ManualClock
) -> None:
    name, password = _account(ctx)
    _enrol(ctx, clock, _principal(ctx, _login(ctx, name, password)), password)
    clock.advance(30)
    with pytest.raises(InvalidCode):
        _login(ctx, name, password, code="000000")
    with ctx.engine.connect() as conn:
        details = conn.execute(
            sa.text("SELECT details FROM audit_log WHERE event = 'auth.login.failed'")
        ).scalars().all()  # fmt: skip
    assert any("second_factor" in str(d) for d in details)


def test_a_first_use_of_an_address_counts_once_even_when_raced(ctx: AppContext) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tradeguard.auth import addresses

    name, _ = _account(ctx)
    user_id = ctx.vault.user(name).id

    def record(_: int) -> bool:
        with ctx.accounts.writing() as conn:
            return addresses.record(conn, user_id, "192.0.2.1", "trade", ctx.clock.now())

    with ThreadPoolExecutor(max_workers=4) as pool:
        firsts = list(pool.map(record, range(8)))
    assert firsts.count(True) == 1
    with ctx.engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count FROM auth_user_addresses")).scalar_one()
    assert count == 8


def test_sessions_long_past_their_end_are_deleted_with_their_tokens(
    ctx: AppContext, clock: ManualClock
) -> None:
    name, password = _account(ctx)
    old = _login(ctx, name, password)
    clock.advance(ctx.settings.session_absolute_timeout + 2 * 24 * 3600)
    _login(ctx, name, password)  # a new login tidies up
    with ctx.engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM auth_sessions")).scalars().all()
        tokens = conn.execute(sa.text("SELECT count(*) FROM auth_refresh_tokens")).scalar_one()
    assert old.session.id not in ids
    assert len(ids) == 1
    assert tokens == 1
