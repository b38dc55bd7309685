"""TRADEGUARD_REQUIRE_2FA=everyone: an account without a second factor may log in, look at
itself and turn one on, and nothing else; once on, it stays on."""

from __future__ import annotations

from tests.web.conftest import ApiFactory

from tradeguard.auth.accounts import Role


def test_everyone_must_turn_on_a_second_factor_first(api_factory: ApiFactory) -> None:
    with api_factory(require_2fa="everyone") as api:
        user = api.make_user(Role.TRADER)
        tokens = api.login(user)
        assert api.client.get("/api/me", headers=tokens.headers).status_code == 200
        refused = api.client.get("/api/bots", headers=tokens.headers)
        assert refused.status_code == 403
        assert "POST /api/me/2fa" in refused.json()["error"]["message"]
        assert api.client.post("/api/vault/lock", headers=tokens.headers).status_code == 403

        enrolled = api.enrol(user)
        assert api.client.get("/api/bots", headers=enrolled.headers).status_code == 200
        kept = api.client.post(
            "/api/me/2fa/disable",
            json={"password": user.password, "code": api.code(user)},
            headers=enrolled.headers,
        )
        assert kept.status_code == 403  # it stays on


def test_by_default_only_admins_must(api_factory: ApiFactory) -> None:
    with api_factory() as api:
        trader = api.make_user(Role.TRADER)
        assert api.client.get("/api/bots", headers=api.login(trader).headers).status_code == 200
        admin = api.make_user(Role.ADMIN)
        assert api.client.get("/api/users", headers=api.login(admin).headers).status_code == 403
