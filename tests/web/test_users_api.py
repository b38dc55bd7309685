"""Accounts for admins over HTTP: who may, creating, role changes and disabling."""

from __future__ import annotations

from tests.conftest import Capture
from tests.web.conftest import Api

from tradeguard.auth.accounts import Role


def _code_of(response_json: dict[str, object]) -> str:
    error = response_json["error"]
    assert isinstance(error, dict)
    return str(error["code"])


def test_only_admins_with_a_second_factor_manage_users(api: Api) -> None:
    for user in (api.make_user(Role.TRADER), api.make_user(Role.VIEWER), api.make_user(Role.ADMIN)):
        tokens = api.login(user)
        response = api.client.get("/api/users", headers=tokens.headers)
        assert response.status_code == 403, user.role
        assert _code_of(response.json()) == "Forbidden"
    admin_without_2fa = api.login(api.make_user(Role.ADMIN))
    message = api.client.get("/api/users", headers=admin_without_2fa.headers).json()
    assert "two-factor" in message["error"]["message"]
    assert api.client.get("/api/users").status_code == 401


def test_an_admin_lists_and_creates_users(api: Api) -> None:
    admin = api.make_user(Role.ADMIN, totp=True)
    tokens = api.login(admin)
    body = {
        "name": "carol",
        "email": "carol@example.com",
        "password": "orbit velvet marmalade 9",
        "role": "viewer",
    }
    created = api.client.post("/api/users", json=body, headers=tokens.headers)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "viewer"
    assert created.json()["totp_enabled"] is False
    names = [u["name"] for u in api.client.get("/api/users", headers=tokens.headers).json()]
    assert {"carol", admin.name} <= set(names)
    taken = api.client.post(
        "/api/users", json={**body, "email": "c2@example.com"}, headers=tokens.headers
    )
    assert taken.status_code == 409
    email_taken = api.client.post(
        "/api/users", json={**body, "name": "carol2"}, headers=tokens.headers
    )
    assert email_taken.status_code == 409
    weak = {**body, "name": "dave", "email": "dave@example.com", "password": "password1234"}
    assert api.client.post("/api/users", json=weak, headers=tokens.headers).status_code == 422
    bad_name = {**body, "name": "Not A Name", "email": "x@example.com"}
    assert api.client.post("/api/users", json=bad_name, headers=tokens.headers).status_code == 422
    logged_in = api.client.post(
        "/api/auth/login", json={"login": "carol", "password": body["password"]}
    )
    assert logged_in.status_code == 200


def test_a_role_change_ends_that_users_sessions(api: Api) -> None:
    admin = api.make_user(Role.ADMIN, totp=True)
    user = api.make_user(Role.TRADER)
    user_tokens = api.login(user)
    tokens = api.login(admin)
    changed = api.client.patch(
        f"/api/users/{user.id}", json={"role": "viewer"}, headers=tokens.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "viewer"
    assert api.client.get("/api/me", headers=user_tokens.headers).status_code == 401
    assert api.login(user).body["user"]["role"] == "viewer"


def test_disable_and_enable(api: Api) -> None:
    admin = api.make_user(Role.ADMIN, totp=True)
    user = api.make_user(Role.TRADER)
    user_tokens = api.login(user)
    tokens = api.login(admin)
    disabled = api.client.patch(
        f"/api/users/{user.id}", json={"disabled": True}, headers=tokens.headers
    )
    assert disabled.json()["disabled"] is True
    assert api.client.get("/api/me", headers=user_tokens.headers).status_code == 401
    body = {"login": user.name, "password": user.password}
    assert api.client.post("/api/auth/login", json=body).status_code == 401
    enabled = api.client.patch(
        f"/api/users/{user.id}", json={"disabled": False}, headers=tokens.headers
    )
    assert enabled.json()["disabled"] is False
    assert api.client.post("/api/auth/login", json=body).status_code == 200


def test_an_admin_cannot_demote_or_disable_themselves(api: Api) -> None:
    admin = api.make_user(Role.ADMIN, totp=True)
    tokens = api.login(admin)
    for change in ({"role": "trader"}, {"disabled": True}):
        response = api.client.patch(f"/api/users/{admin.id}", json=change, headers=tokens.headers)
        assert response.status_code == 409, change
    assert api.client.get("/api/me", headers=tokens.headers).json()["role"] == "admin"


def test_unknown_and_out_of_range_ids(api: Api) -> None:
    tokens = api.login(api.make_user(Role.ADMIN, totp=True))
    assert (
        api.client.patch(
            "/api/users/999999", json={"disabled": True}, headers=tokens.headers
        ).status_code
        == 404
    )
    for bad in ("0", "-1", str(2**63), "abc"):
        response = api.client.patch(f"/api/users/{bad}", json={}, headers=tokens.headers)
        assert response.status_code == 422, bad


def test_an_admin_ends_every_session_of_a_user(api: Api) -> None:
    admin = api.make_user(Role.ADMIN, totp=True)
    user = api.make_user()
    first, second = api.login(user), api.login(user)
    tokens = api.login(admin)
    response = api.client.post(f"/api/users/{user.id}/logout-all", headers=tokens.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"sessions_ended": 2}
    for session in (first, second):
        assert api.client.get("/api/me", headers=session.headers).status_code == 401
    api.login(user)  # the password still works
    trader = api.login(api.make_user())
    refused = api.client.post(f"/api/users/{user.id}/logout-all", headers=trader.headers)
    assert refused.status_code == 403


def test_refused_requests_leave_a_security_log_line(api: Api, capture: Capture) -> None:
    viewer = api.make_user(Role.VIEWER)
    api.client.get("/api/me?token=SECRET-IN-QUERY")
    api.client.get("/api/users", headers=api.login(viewer).headers)
    lines = [r.getMessage() for r in capture.records if r.name == "tradeguard.security"]
    assert "refused GET /api/me: 401 TokenInvalid" in lines
    assert "refused GET /api/users: 403 Forbidden" in lines
    api.client.post("/api/auth/refresh", headers={"Cookie": "__Host-tg_refresh=nothing-real"})
    api.client.post("/api/auth/logout", headers={"Origin": "https://evil.example"})
    lines = [r.getMessage() for r in capture.records if r.name == "tradeguard.security"]
    assert "refused POST /api/auth/refresh: 401 TokenInvalid" in lines
    assert "refused POST /api/auth/logout: 403 CrossSiteRequest" in lines
    assert not any("SECRET-IN-QUERY" in line for line in lines)


def test_a_flood_of_throttled_requests_leaves_one_line_a_minute(api: Api, capture: Capture) -> None:
    body = {"login": "nobody-here", "password": "not a password at all"}
    statuses = [api.client.post("/api/auth/login", json=body).status_code for _ in range(15)]
    assert statuses.count(429) >= 9
    lines = [r.getMessage() for r in capture.records if r.name == "tradeguard.security"]
    assert lines.count("refused POST /api/auth/login: 429 Throttled") == 1
    assert lines.count("refused POST /api/auth/login: 401 LoginFailed") == statuses.count(401)
