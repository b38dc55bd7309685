"""The caller's own account over HTTP: sessions, TOTP enrolment, step-up, backup codes,
password change."""

from __future__ import annotations

import pyotp
from tests.web.conftest import Api, tokens_of, totp_secret_of

from tradeguard.auth.accounts import Role


def _code_of(response_json: dict[str, object]) -> str:
    error = response_json["error"]
    assert isinstance(error, dict)
    return str(error["code"])


def test_me_and_sessions_show_the_account_and_mark_this_session(api: Api) -> None:
    user = api.make_user(Role.VIEWER)
    first, second = api.login(user, **{"User-Agent": "first"}), api.login(user)
    me = api.client.get("/api/me", headers=first.headers).json()
    assert me["name"] == user.name
    assert me["role"] == "viewer"
    assert me["totp_enabled"] is False
    assert "password_hash" not in me
    assert "totp_secret" not in me
    sessions = api.client.get("/api/me/sessions", headers=first.headers).json()
    assert len(sessions) == 2
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "first"
    api.client.post("/api/auth/logout", headers=second.headers)
    assert len(api.client.get("/api/me/sessions", headers=first.headers).json()) == 1


def test_enrolment_needs_one_valid_code_and_shows_backup_codes_once(api: Api) -> None:
    user = api.make_user()
    tokens = api.login(user)
    begun = api.client.post("/api/me/2fa", json={"password": user.password}, headers=tokens.headers)
    assert begun.status_code == 200
    uri = begun.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/")
    assert begun.json()["qr_svg"].lstrip().startswith(("<?xml", "<svg"))
    assert "<script" not in begun.json()["qr_svg"]
    wrong = api.client.post("/api/me/2fa/confirm", json={"code": "000000"}, headers=tokens.headers)
    assert wrong.status_code == 401
    user.totp_secret = totp_secret_of(uri)
    confirmed = api.client.post(
        "/api/me/2fa/confirm", json={"code": api.code(user)}, headers=tokens.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["backup_codes"]
    assert len(codes) == len(set(codes)) == 10
    # A privilege change: the session it was made in has ended, a new one goes on.
    assert api.client.get("/api/me", headers=tokens.headers).status_code == 401
    renewed = tokens_of(confirmed)
    assert renewed.refresh != tokens.refresh
    assert api.client.get("/api/me", headers=renewed.headers).json()["totp_enabled"] is True
    again = api.client.post(
        "/api/me/2fa",
        json={"password": user.password, "code": api.code(user)},
        headers=renewed.headers,
    )
    assert again.status_code == 409


def test_a_restarted_enrolment_replaces_the_pending_secret(api: Api) -> None:
    user = api.make_user()
    tokens = api.login(user)
    first = totp_secret_of(
        api.client.post(
            "/api/me/2fa", json={"password": user.password}, headers=tokens.headers
        ).json()["otpauth_uri"]
    )
    second = totp_secret_of(
        api.client.post(
            "/api/me/2fa", json={"password": user.password}, headers=tokens.headers
        ).json()["otpauth_uri"]
    )
    assert first != second
    api.clock.advance(30)
    stale = pyotp.TOTP(first).at(api.clock.now())
    response = api.client.post("/api/me/2fa/confirm", json={"code": stale}, headers=tokens.headers)
    assert response.status_code == 401


def test_turning_2fa_on_ends_the_other_sessions(api: Api) -> None:
    user = api.make_user()
    other = api.login(user)
    api.enrol(user)
    assert api.client.get("/api/me", headers=other.headers).status_code == 401


def test_disabling_2fa_needs_the_password_and_a_fresh_code(api: Api) -> None:
    user = api.make_user(totp=True)
    tokens = api.login(user)
    spent = pyotp.TOTP(user.totp_secret or "").at(api.clock.now())  # this login's code
    missing = api.client.post("/api/me/2fa/disable", json={}, headers=tokens.headers)
    assert missing.status_code == 401
    assert _code_of(missing.json()) == "SecondFactorRequired"
    with_password = api.client.post(
        "/api/me/2fa/disable", json={"password": user.password}, headers=tokens.headers
    )
    assert with_password.status_code == 401  # a password is no second factor
    code_only = api.client.post(
        "/api/me/2fa/disable", json={"code": api.code(user)}, headers=tokens.headers
    )
    assert code_only.status_code == 401  # nor a code alone: a stolen session has neither
    used = api.client.post(
        "/api/me/2fa/disable",
        json={"password": user.password, "code": spent},
        headers=tokens.headers,
    )
    assert used.status_code == 401  # the code the login spent
    done = api.client.post(
        "/api/me/2fa/disable",
        json={"password": user.password, "code": api.code(user)},
        headers=tokens.headers,
    )
    assert done.status_code == 200, done.text
    assert api.client.get("/api/me", headers=tokens.headers).json()["totp_enabled"] is False


def test_an_admin_cannot_turn_2fa_off(api: Api) -> None:
    admin = api.make_user(Role.ADMIN, totp=True)
    tokens = api.login(admin)
    response = api.client.post(
        "/api/me/2fa/disable", json={"code": api.code(admin)}, headers=tokens.headers
    )
    assert response.status_code == 403


def test_new_backup_codes_replace_the_old_ones(api: Api) -> None:
    user = api.make_user(totp=True)
    tokens = api.login(user)
    response = api.client.post(
        "/api/me/backup-codes",
        json={"password": user.password, "code": api.code(user)},
        headers=tokens.headers,
    )
    assert response.status_code == 200, response.text
    fresh = response.json()["backup_codes"]
    assert len(fresh) == 10
    assert not set(fresh) & set(user.backup_codes)
    body = {"login": user.name, "password": user.password}
    old = api.client.post("/api/auth/login", json={**body, "code": user.backup_codes[1]})
    assert old.status_code == 401
    assert api.client.post("/api/auth/login", json={**body, "code": fresh[0]}).status_code == 200


def test_backup_codes_need_a_second_factor_and_a_fresh_code(api: Api) -> None:
    plain = api.make_user()
    tokens = api.login(plain)
    no_2fa = api.client.post(
        "/api/me/backup-codes", json={"password": plain.password}, headers=tokens.headers
    )
    assert no_2fa.status_code == 409
    user = api.make_user(totp=True)
    tokens = api.login(user)
    wrong = api.client.post("/api/me/backup-codes", json={"code": "123456"}, headers=tokens.headers)
    assert wrong.status_code == 401


def test_password_change_needs_the_current_one_and_ends_other_sessions(api: Api) -> None:
    user = api.make_user()
    tokens, other = api.login(user), api.login(user)
    new = "a completely new passphrase 7"
    wrong = api.client.post(
        "/api/me/password",
        json={"current_password": "not the password", "new_password": new},
        headers=tokens.headers,
    )
    assert wrong.status_code == 401
    weak = api.client.post(
        "/api/me/password",
        json={"current_password": user.password, "new_password": "password1234"},
        headers=tokens.headers,
    )
    assert weak.status_code == 422
    assert _code_of(weak.json()) == "WeakPassword"
    done = api.client.post(
        "/api/me/password",
        json={"current_password": user.password, "new_password": new},
        headers=tokens.headers,
    )
    assert done.status_code == 200, done.text
    assert api.client.get("/api/me", headers=other.headers).status_code == 401
    # A new session for the caller too: the old tokens end, the answer's work.
    assert api.client.get("/api/me", headers=tokens.headers).status_code == 401
    assert api.client.get("/api/me", headers=tokens_of(done).headers).status_code == 200
    user.password = new
    api.login(user)


def test_password_change_with_2fa_needs_a_code_too(api: Api) -> None:
    user = api.make_user(totp=True)
    tokens = api.login(user)
    body = {"current_password": user.password, "new_password": "a completely new passphrase 7"}
    missing = api.client.post("/api/me/password", json=body, headers=tokens.headers)
    assert missing.status_code == 401
    done = api.client.post(
        "/api/me/password", json={**body, "code": api.code(user)}, headers=tokens.headers
    )
    assert done.status_code == 200, done.text


def test_a_mistyped_current_password_does_not_spend_the_code(api: Api) -> None:
    user = api.make_user(totp=True)
    tokens = api.login(user)
    code = api.code(user)
    new = "a completely new passphrase 7"
    wrong = {"current_password": "not my password at all", "new_password": new, "code": code}
    assert (
        api.client.post("/api/me/password", json=wrong, headers=tokens.headers).status_code == 401
    )
    right = {**wrong, "current_password": user.password}
    done = api.client.post("/api/me/password", json=right, headers=tokens.headers)
    assert done.status_code == 200, done.text  # the same code still works: it was not spent


def test_ending_another_session_needs_a_fresh_proof(api: Api) -> None:
    user = api.make_user()
    tokens, other = api.login(user), api.login(user)
    sessions = api.client.get("/api/me/sessions", headers=tokens.headers).json()
    other_id = next(s["id"] for s in sessions if not s["current"])
    url = f"/api/me/sessions/{other_id}/end"
    refused = api.client.post(url, json={"password": "not the password"}, headers=tokens.headers)
    assert refused.status_code == 401
    assert api.client.get("/api/me", headers=other.headers).status_code == 200
    done = api.client.post(url, json={"password": user.password}, headers=tokens.headers)
    assert done.status_code == 200, done.text
    assert api.client.get("/api/me", headers=other.headers).status_code == 401
    assert api.client.get("/api/me", headers=tokens.headers).status_code == 200


def test_another_users_session_cannot_be_ended(api: Api) -> None:
    user, victim = api.make_user(), api.make_user()
    tokens, victim_tokens = api.login(user), api.login(victim)
    victim_session = api.client.get("/api/me/sessions", headers=victim_tokens.headers).json()[0]
    response = api.client.post(
        f"/api/me/sessions/{victim_session['id']}/end",
        json={"password": user.password},
        headers=tokens.headers,
    )
    assert response.status_code == 404
    assert api.client.get("/api/me", headers=victim_tokens.headers).status_code == 200


def test_email_change_needs_the_password_a_fresh_code_and_a_free_address(api: Api) -> None:
    user = api.make_user(totp=True)
    other = api.make_user()
    tokens = api.login(user)
    without = api.client.post(
        "/api/me/email", json={"email": "new@example.com"}, headers=tokens.headers
    )
    assert without.status_code == 401
    code_only = api.client.post(
        "/api/me/email",
        json={"email": "new@example.com", "code": api.code(user)},
        headers=tokens.headers,
    )
    assert code_only.status_code == 401  # full re-authentication: the password too
    taken = api.client.post(
        "/api/me/email",
        json={"email": other.email, "password": user.password, "code": api.code(user)},
        headers=tokens.headers,
    )
    assert taken.status_code == 409
    done = api.client.post(
        "/api/me/email",
        json={"email": "New@Example.com", "password": user.password, "code": api.code(user)},
        headers=tokens.headers,
    )
    assert done.status_code == 200, done.text
    assert done.json()["email"] == "new@example.com"
