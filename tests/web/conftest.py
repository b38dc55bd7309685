"""The real API over real HTTP: `create_app` on a fresh installation, served by uvicorn on
127.0.0.1, and an httpx client pointed at it.

Every test that takes `api` runs twice: on SQLite (counters in memory, one-time tokens in the
database) and on PostgreSQL + Redis (counters and one-time tokens in Redis, under this
installation's own key prefix). PostgreSQL or Redis unreachable: skipped with the reason, or a
failure under CI=true.

Time is a `ManualClock` started at the real time: a TOTP code is good once per 30 s step, so
`api.code(user)` moves the clock one step on before it makes a code. Access tokens are checked
against the same clock, so nothing depends on the wall clock but Redis's own key expiry.

Reusable pieces for the attack suite and schemathesis: `api` (base URL, client, context,
clock), `make_user(role, totp=False) -> TestUser`, `login(user) -> Tokens`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
import redis
from tests.auth.conftest import redis_or_skip
from tests.conftest import audit_key_env
from tests.sims.server import serve

from tradeguard.auth.accounts import Role
from tradeguard.auth.factory import instance_prefix
from tradeguard.config import Settings, load_settings
from tradeguard.core.clock import ManualClock
from tradeguard.secrets import Password
from tradeguard.vault.master import FILE_VARIABLE, init_keyring_file
from tradeguard.web.app import SERVER_OPTIONS, create_app
from tradeguard.web.context import AppContext
from tradeguard.web.routers.auth import REFRESH_COOKIE
from tradeguard.web.runtime import open_context

PUBLIC_URL = "https://trade.example.test"
TOTP_STEP_S = 30


@dataclass
class TestUser:
    __test__ = False  # not a test class, whatever its name

    id: int
    name: str
    email: str
    password: str
    role: Role
    totp_secret: str | None = None
    backup_codes: list[str] = field(default_factory=list)


@dataclass
class Tokens:
    access: str
    refresh: str
    csrf: str
    body: dict[str, Any]
    set_cookie: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    def refresh_headers(self, csrf: str | None = None) -> dict[str, str]:
        """What a browser sends to /api/auth/refresh: the cookie and the CSRF header."""
        return {"Cookie": f"{REFRESH_COOKIE}={self.refresh}", "X-CSRF-Token": csrf or self.csrf}


def refresh_cookie(response: httpx.Response) -> tuple[str, str]:
    """The refresh token and the whole Set-Cookie line it came in."""
    for line in response.headers.get_list("set-cookie"):
        match = re.match(rf"{re.escape(REFRESH_COOKIE)}=([^;]*)", line)
        if match and match.group(1):
            return match.group(1), line
    raise AssertionError(f"no {REFRESH_COOKIE} cookie in the response")


def totp_secret_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["secret"][0]


@dataclass
class Api:
    url: str
    client: httpx.Client
    ctx: AppContext
    clock: ManualClock
    backend: str

    def code(self, user: TestUser) -> str:
        """A TOTP code never used before: the clock moves one step on first."""
        assert user.totp_secret is not None, f"{user.name} has no second factor"
        self.clock.advance(TOTP_STEP_S)
        return pyotp.TOTP(user.totp_secret).at(self.clock.now())

    def login(self, user: TestUser, *, code: str | None = None, **headers: str) -> Tokens:
        body: dict[str, Any] = {"login": user.name, "password": user.password}
        if user.totp_secret is not None:
            body["code"] = code or self.code(user)
        response = self.client.post("/api/auth/login", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return tokens_of(response)

    def make_user(self, role: Role | str = Role.TRADER, *, totp: bool = False) -> TestUser:
        """An account made by the service (as an admin would), with a strong random password;
        with `totp`, enrolled through the API (begin, confirm), backup codes kept."""
        role = Role(role)
        name = f"{role.value}-{secrets.token_hex(4)}"
        password = f"tg {secrets.token_urlsafe(18)}"
        account = self.ctx.accounts.create_account(
            name, f"{name}@example.com", Password(password), role, actor="operator"
        )
        user = TestUser(account.id, name, f"{name}@example.com", password, role)
        if totp:
            self.enrol(user)
        return user

    def enrol(self, user: TestUser) -> Tokens:
        """Turn on TOTP for `user` over the API; the tokens of the new session it leaves."""
        tokens = self.login(user)
        begun = self.client.post(
            "/api/me/2fa", json={"password": user.password}, headers=tokens.headers
        )
        assert begun.status_code == 200, begun.text
        user.totp_secret = totp_secret_of(begun.json()["otpauth_uri"])
        confirmed = self.client.post(
            "/api/me/2fa/confirm", json={"code": self.code(user)}, headers=tokens.headers
        )
        assert confirmed.status_code == 200, confirmed.text
        user.backup_codes = confirmed.json()["backup_codes"]
        return tokens_of(confirmed)  # a second factor ends the session: these are the new one


def tokens_of(response: httpx.Response) -> Tokens:
    body = response.json()
    refresh, line = refresh_cookie(response)
    return Tokens(body["access_token"], refresh, body["csrf_token"], body, line)


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> Settings:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    init_keyring_file(keys / "master.keyring")
    monkeypatch.setenv(FILE_VARIABLE, str(keys / "master.keyring"))
    for name, value in audit_key_env(keys).items():
        monkeypatch.setenv(name, value)
    return load_settings(data_dir=tmp_path / "data", public_url=PUBLIC_URL, **overrides)


@contextmanager
def running_api(settings: Settings, backend: str) -> Iterator[Api]:
    """The app on `settings`, served on 127.0.0.1, with a client; Redis keys of this
    installation are deleted afterwards."""
    clock = ManualClock(datetime.now(UTC))
    with open_context(settings, clock=clock) as ctx:
        try:
            with (
                serve(create_app(ctx), **SERVER_OPTIONS) as url,
                httpx.Client(base_url=url, timeout=30) as client,
            ):
                yield Api(url, client, ctx, clock, backend)
        finally:
            if settings.redis_url is not None:
                _forget_redis_keys(settings, instance_prefix(ctx.engine))


def _forget_redis_keys(settings: Settings, prefix: str) -> None:
    assert settings.redis_url is not None
    with settings.redis_url.reveal_text() as url:
        client = redis.Redis.from_url(url)
    try:
        keys = [*client.scan_iter(f"{prefix}*"), *client.scan_iter(f"LIMITS:{prefix}*")]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


ApiFactory = Callable[..., AbstractContextManager[Api]]


@pytest.fixture
def api_factory(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ApiFactory:
    """`with api_factory(trusted_proxies=[...]) as api:` for a test that needs other settings
    (one installation per test: call it once)."""

    def factory(**overrides: Any) -> AbstractContextManager[Api]:
        if backend == "postgresql":
            overrides.setdefault("database_url", request.getfixturevalue("postgres_schema_url"))
            overrides.setdefault("redis_url", redis_or_skip())
        return running_api(_settings(tmp_path, monkeypatch, **overrides), backend)

    return factory


@pytest.fixture
def api(api_factory: ApiFactory) -> Iterator[Api]:
    with api_factory() as running:
        yield running


@pytest.fixture
def make_user(api: Api) -> Callable[..., TestUser]:
    return api.make_user


@pytest.fixture
def login(api: Api) -> Callable[..., Tokens]:
    return api.login
