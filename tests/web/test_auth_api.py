"""Login, refresh, logout, reset and setup over real HTTP, on SQLite and PostgreSQL + Redis."""

from __future__ import annotations

import re

import pytest
from tests.web.conftest import Api, Tokens, refresh_cookie, tokens_of

from tradeguard.auth.accounts import Role
from tradeguard.auth.service import RESET_TTL_S
from tradeguard.core.events import EventName
from tradeguard.secrets import Token
from tradeguard.web.routers.auth import REFRESH_COOKIE, RESET_ACCEPTED


def _error(response_json: dict[str, object]) -> str:
    error = response_json["error"]
    assert isinstance(error, dict)
    return str(error["code"])


def _events(api: Api, name: EventName) -> int:
    """How many audit entries of `name` are written (the writer thread flushed first)."""
    api.ctx.audit.sign_head()
    with api.ctx.engine.connect() as conn:
        from tradeguard.audit.tables import entries

        rows = conn.execute(entries.select().where(entries.c.event == name.value)).all()
    return len(rows)


# -- login ---------------------------------------------------------------------------------------


def test_login_answers_tokens_and_a_host_only_refresh_cookie(api: Api) -> None:
    user = api.make_user(Role.TRADER)
    response = api.client.post(
        "/api/auth/login", json={"login": user.name, "password": user.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == api.ctx.settings.access_token_ttl
    assert body["user"]["name"] == user.name
    assert body["user"]["role"] == "trader"
    assert body["csrf_token"]
    _, cookie = refresh_cookie(response)
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert cookie.startswith(f"{REFRESH_COOKIE}=")
    assert {"httponly", "secure", "path", "samesite", "max-age"} <= attributes
    assert "domain" not in attributes  # __Host-: no Domain, Path=/
    assert "Path=/;" in cookie + ";"
    assert "SameSite=strict" in cookie
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert max_age == api.ctx.settings.session_absolute_timeout


def test_login_by_email_works_too(api: Api) -> None:
    user = api.make_user()
    response = api.client.post(
        "/api/auth/login", json={"login": user.email.upper(), "password": user.password}
    )
    assert response.status_code == 200, response.text


def test_wrong_password_and_unknown_name_get_the_same_answer(api: Api) -> None:
    user = api.make_user()
    wrong = api.client.post("/api/auth/login", json={"login": user.name, "password": "x" * 14})
    unknown = api.client.post("/api/auth/login", json={"login": "nobody", "password": "x" * 14})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert _error(wrong.json()) == "LoginFailed"
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_a_disabled_account_answers_like_a_wrong_password(api: Api) -> None:
    user = api.make_user()
    admin = api.make_user(Role.ADMIN, totp=True)
    tokens = api.login(admin)
    patched = api.client.patch(
        f"/api/users/{user.id}", json={"disabled": True}, headers=tokens.headers
    )
    assert patched.status_code == 200, patched.text
    response = api.client.post(
        "/api/auth/login", json={"login": user.name, "password": user.password}
    )
    assert response.status_code == 401
    assert _error(response.json()) == "LoginFailed"


def test_second_factor_is_asked_for_then_accepted_once(api: Api) -> None:
    user = api.make_user(totp=True)
    body = {"login": user.name, "password": user.password}
    asked = api.client.post("/api/auth/login", json=body)
    assert asked.status_code == 401
    assert _error(asked.json()) == "SecondFactorRequired"
    code = api.code(user)
    assert api.client.post("/api/auth/login", json={**body, "code": code}).status_code == 200
    replayed = api.client.post("/api/auth/login", json={**body, "code": code})
    assert replayed.status_code == 401
    assert _error(replayed.json()) == "InvalidCode"
    wrong_password = api.client.post(
        "/api/auth/login", json={**body, "password": "x" * 14, "code": api.code(user)}
    )
    assert _error(wrong_password.json()) == "LoginFailed"  # the code is not even looked at


def test_a_backup_code_logs_in_once(api: Api) -> None:
    user = api.make_user(totp=True)
    body = {"login": user.name, "password": user.password, "code": user.backup_codes[0]}
    assert api.client.post("/api/auth/login", json=body).status_code == 200
    again = api.client.post("/api/auth/login", json=body)
    assert again.status_code == 401
    assert _error(again.json()) == "InvalidCode"


def test_failed_logins_are_throttled_with_retry_after(api: Api) -> None:
    user = api.make_user()
    bad = {"login": user.name, "password": "wrong password 1"}
    statuses = [api.client.post("/api/auth/login", json=bad).status_code for _ in range(5)]
    assert statuses == [401] * 5
    throttled = api.client.post(
        "/api/auth/login", json={"login": user.name, "password": user.password}
    )
    assert throttled.status_code == 429, throttled.text
    assert _error(throttled.json()) == "Throttled"
    assert int(throttled.headers["retry-after"]) >= 1


def test_a_password_is_never_echoed_in_a_validation_error(api: Api) -> None:
    secret = "correct horse battery staple " * 40  # over 1,024 characters
    response = api.client.post("/api/auth/login", json={"login": "alice", "password": secret})
    assert response.status_code == 422
    body = response.json()
    assert _error(body) == "validation"
    assert body["error"]["fields"][0]["loc"] == "body.password"
    assert "correct horse" not in response.text


def test_text_that_is_not_unicode_is_a_422_not_a_500(api: Api) -> None:
    """JSON allows a lone surrogate (as an escape); nothing downstream can encode one."""
    user = api.make_user()
    json_type = {"Content-Type": "application/json"}
    for path, raw in (
        ("/api/auth/login", '{"login": "NAME", "password": "\\ud800 not a password"}'),
        ("/api/auth/login", '{"login": "\\udfff", "password": "whatever it is"}'),
        ("/api/auth/reset/request", '{"email": "a\\ud800@example.com"}'),
    ):
        body = raw.replace("NAME", user.name).encode()
        response = api.client.post(path, content=body, headers=json_type)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation"


def test_unknown_fields_are_refused(api: Api) -> None:
    response = api.client.post(
        "/api/auth/login", json={"login": "a", "password": "b", "role": "admin"}
    )
    assert response.status_code == 422
    assert any(f["loc"] == "body.role" for f in response.json()["error"]["fields"])


# -- access tokens -------------------------------------------------------------------------------


def test_me_needs_a_bearer_token_in_the_header(api: Api) -> None:
    user = api.make_user()
    tokens = api.login(user)
    assert api.client.get("/api/me", headers=tokens.headers).json()["name"] == user.name
    missing = api.client.get("/api/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert api.client.get("/api/me", params={"access_token": tokens.access}).status_code == 401
    as_cookie = api.client.get("/api/me", headers={"Cookie": f"access_token={tokens.access}"})
    assert as_cookie.status_code == 401
    garbage = api.client.get("/api/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401
    assert _error(garbage.json()) == "TokenInvalid"


def test_an_access_token_expires_with_the_clock(api: Api) -> None:
    tokens = api.login(api.make_user())
    api.clock.advance(api.ctx.settings.access_token_ttl)
    assert api.client.get("/api/me", headers=tokens.headers).status_code == 401


# -- refresh -------------------------------------------------------------------------------------


def _refresh(api: Api, tokens: Tokens, **headers: str) -> Tokens:
    response = api.client.post("/api/auth/refresh", headers=tokens.refresh_headers() | headers)
    assert response.status_code == 200, response.text
    return tokens_of(response)


def test_refresh_rotates_the_cookie_and_issues_a_new_access_token(api: Api) -> None:
    tokens = api.login(api.make_user())
    api.clock.advance(60)
    renewed = _refresh(api, tokens)
    assert renewed.refresh != tokens.refresh
    assert renewed.access != tokens.access
    assert renewed.csrf == tokens.csrf  # bound to the session, which goes on
    assert api.client.get("/api/me", headers=renewed.headers).status_code == 200
    max_age = int(re.search(r"Max-Age=(\d+)", renewed.set_cookie).group(1))  # type: ignore[union-attr]
    assert max_age == api.ctx.settings.session_absolute_timeout - 60


def test_refresh_needs_the_sessions_csrf_token(api: Api) -> None:
    user = api.make_user()
    tokens = api.login(user)
    other = api.login(user)
    cookie = {"Cookie": f"{REFRESH_COOKIE}={tokens.refresh}"}
    missing = api.client.post("/api/auth/refresh", headers=cookie)
    wrong = api.client.post("/api/auth/refresh", headers=tokens.refresh_headers(other.csrf))
    assert missing.status_code == wrong.status_code == 401
    assert "CSRF" in missing.json()["error"]["message"]
    _refresh(api, tokens)  # the token was not used up by the refused attempts


def test_refresh_from_another_site_is_refused_before_anything_runs(api: Api) -> None:
    tokens = api.login(api.make_user())
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = api.client.post("/api/auth/refresh", headers=tokens.refresh_headers() | headers)
        assert response.status_code == 403, response.text
        assert _error(response.json()) == "CrossSiteRequest"
    same_site = {"Origin": api.ctx.settings.public_url, "Sec-Fetch-Site": "same-origin"}
    _refresh(api, tokens, **same_site)


def test_a_reused_refresh_token_ends_the_session_and_raises_an_alert(api: Api) -> None:
    tokens = api.login(api.make_user())
    renewed = _refresh(api, tokens)
    reused = api.client.post("/api/auth/refresh", headers=tokens.refresh_headers())
    assert reused.status_code == 401
    assert _error(reused.json()) == "ReusedRefreshToken"
    assert f"{REFRESH_COOKIE}=" in reused.headers["set-cookie"]  # the browser drops it
    # The thief's (or the owner's) newer token and access token are dead too.
    assert (
        api.client.post("/api/auth/refresh", headers=renewed.refresh_headers()).status_code == 401
    )
    assert api.client.get("/api/me", headers=renewed.headers).status_code == 401
    assert _events(api, EventName.AUTH_REFRESH_REUSED) == 1


def test_refresh_without_a_cookie_or_after_the_absolute_timeout_fails(api: Api) -> None:
    tokens = api.login(api.make_user())
    bare = api.client.post("/api/auth/refresh", headers={"X-CSRF-Token": tokens.csrf})
    assert bare.status_code == 401
    api.clock.advance(api.ctx.settings.session_absolute_timeout)
    late = api.client.post("/api/auth/refresh", headers=tokens.refresh_headers())
    assert late.status_code == 401


def test_a_session_in_use_still_ends_at_its_absolute_timeout(api: Api) -> None:
    """Refreshing every 20 minutes keeps the idle timeout away, never the absolute one."""
    tokens = api.login(api.make_user())
    absolute = api.ctx.settings.session_absolute_timeout
    for _ in range(absolute // 1200 - 1):
        api.clock.advance(1200)
        renewed = api.client.post("/api/auth/refresh", headers=tokens.refresh_headers())
        assert renewed.status_code == 200, renewed.text
        tokens = tokens_of(renewed)
    api.clock.advance(1200)
    ended = api.client.post("/api/auth/refresh", headers=tokens.refresh_headers())
    assert ended.status_code == 401


def test_an_idle_session_ends(api: Api) -> None:
    tokens = api.login(api.make_user())
    api.clock.advance(api.ctx.settings.session_idle_timeout)
    assert api.client.post("/api/auth/refresh", headers=tokens.refresh_headers()).status_code == 401


# -- logout --------------------------------------------------------------------------------------


def test_logout_ends_this_session_only(api: Api) -> None:
    user = api.make_user()
    first, second = api.login(user), api.login(user)
    response = api.client.post("/api/auth/logout", headers=first.headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert f"{REFRESH_COOKIE}=" in response.headers["set-cookie"]
    assert api.client.get("/api/me", headers=first.headers).status_code == 401
    assert api.client.post("/api/auth/refresh", headers=first.refresh_headers()).status_code == 401
    assert api.client.get("/api/me", headers=second.headers).status_code == 200


def test_logout_all_ends_every_session(api: Api) -> None:
    user = api.make_user()
    first, second = api.login(user), api.login(user)
    response = api.client.post("/api/auth/logout-all", headers=first.headers)
    assert response.status_code == 200
    assert response.json() == {"sessions_ended": 2}
    for tokens in (first, second):
        assert api.client.get("/api/me", headers=tokens.headers).status_code == 401


# -- password reset ------------------------------------------------------------------------------


def test_reset_request_answers_the_same_for_any_address(api: Api) -> None:
    user = api.make_user()
    answers = [
        api.client.post("/api/auth/reset/request", json={"email": email})
        for email in (user.email, "nobody@example.com", "not an address")
    ]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert all(a.json() == {"status": "accepted", "message": RESET_ACCEPTED} for a in answers)
    api.ctx.accounts.wait_for_mail()
    assert _events(api, EventName.AUTH_PASSWORD_RESET_REQUESTED) == 1


def _reset_token(api: Api, user_id: int) -> str:
    """A reset token as the mail would carry it (the mail itself: tests/auth)."""
    token: Token = api.ctx.accounts.tokens.issue("reset", user_id=user_id, ttl=RESET_TTL_S)
    with token.reveal_text() as text:
        return text


def test_reset_confirm_sets_the_password_once_and_ends_every_session(api: Api) -> None:
    user = api.make_user()
    old_session = api.login(user)
    token = _reset_token(api, user.id)
    new_password = "a brand new passphrase 42"
    body = {"token": token, "password": new_password}
    assert api.client.post("/api/auth/reset/confirm", json=body).status_code == 200
    assert api.client.get("/api/me", headers=old_session.headers).status_code == 401
    user.password = new_password
    api.login(user)
    again = api.client.post(
        "/api/auth/reset/confirm", json={**body, "password": "yet another one 43"}
    )
    assert again.status_code == 401
    assert _error(again.json()) == "TokenInvalid"


def test_reset_does_not_bypass_the_second_factor(api: Api) -> None:
    user = api.make_user(totp=True)
    token = _reset_token(api, user.id)
    body = {"token": token, "password": "a brand new passphrase 42"}
    asked = api.client.post("/api/auth/reset/confirm", json=body)
    assert asked.status_code == 401
    assert _error(asked.json()) == "SecondFactorRequired"
    done = api.client.post("/api/auth/reset/confirm", json={**body, "code": api.code(user)})
    assert done.status_code == 200, done.text


def test_a_weak_new_password_is_refused_and_the_token_survives(api: Api) -> None:
    user = api.make_user()
    token = _reset_token(api, user.id)
    weak = api.client.post(
        "/api/auth/reset/confirm", json={"token": token, "password": "password1234"}
    )
    assert weak.status_code == 422
    assert _error(weak.json()) == "WeakPassword"
    strong = {"token": token, "password": "a brand new passphrase 42"}
    assert api.client.post("/api/auth/reset/confirm", json=strong).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_expired_reset_token_fails(api: Api) -> None:
    # The database store expires on our clock; Redis on its own (tests/auth covers that).
    user = api.make_user()
    token = _reset_token(api, user.id)
    api.clock.advance(RESET_TTL_S)
    body = {"token": token, "password": "a brand new passphrase 42"}
    response = api.client.post("/api/auth/reset/confirm", json=body)
    assert response.status_code == 401


# -- first admin ---------------------------------------------------------------------------------


def test_a_new_setup_token_ends_the_earlier_ones(api: Api) -> None:
    """Each start of `serve` prints a new token; with Redis configured as well."""
    earlier, latest = api.ctx.accounts.setup_token(), api.ctx.accounts.setup_token()
    assert earlier is not None
    assert latest is not None
    body = {"name": "root", "email": "root@example.com", "password": "the first admin's passphrase"}
    with earlier.reveal_text() as token:
        assert api.client.post("/api/setup", json={**body, "token": token}).status_code == 401
    with latest.reveal_text() as token:
        assert api.client.post("/api/setup", json={**body, "token": token}).status_code == 201


def test_setup_creates_the_first_admin_once(api: Api) -> None:
    setup = api.ctx.accounts.setup_token()
    assert setup is not None
    with setup.reveal_text() as token:
        body = {
            "token": token,
            "name": "root",
            "email": "root@example.com",
            "password": "the first admin's passphrase",
        }
    created = api.client.post("/api/setup", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "admin"
    assert created.json()["name"] == "root"
    again = api.client.post("/api/setup", json={**body, "name": "root2", "email": "r2@example.com"})
    assert again.status_code == 409
    assert api.ctx.accounts.setup_token() is None


def test_setup_with_a_wrong_token_creates_nobody(api: Api) -> None:
    body = {
        "token": "x" * 43,
        "name": "root",
        "email": "root@example.com",
        "password": "the first admin's passphrase",
    }
    response = api.client.post("/api/setup", json=body)
    assert response.status_code == 401
    assert api.ctx.accounts.needs_setup()
