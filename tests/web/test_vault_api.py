"""A password-mode vault over the API: opened with the vault password only, throttled, locked
on request and by its timeouts; a service-mode vault is always open."""

from __future__ import annotations

import asyncio
import secrets

from tests.web.conftest import Api, TestUser

from tradeguard.auth.accounts import Role
from tradeguard.secrets import Password
from tradeguard.web.app import sweep_unlock_sessions


def _password_mode_user(api: Api) -> tuple[TestUser, str]:
    name = f"vaulted-{secrets.token_hex(4)}"
    password, vault_password = f"tg {secrets.token_urlsafe(18)}", f"v {secrets.token_urlsafe(18)}"
    account = api.ctx.accounts.create_account(
        name,
        f"{name}@example.com",
        Password(password),
        Role.TRADER,
        actor="operator",
        vault_password=Password(vault_password),
    )
    return TestUser(account.id, name, f"{name}@example.com", password, Role.TRADER), vault_password


def test_the_vault_opens_with_the_vault_password_and_locks_again(api: Api) -> None:
    user, vault_password = _password_mode_user(api)
    headers = api.login(user).headers
    assert api.client.get("/api/vault", headers=headers).json() == {
        "mode": "password",
        "unlocked": False,
    }
    login_password = api.client.post(
        "/api/vault/unlock", json={"password": user.password}, headers=headers
    )
    assert login_password.status_code == 401  # the login password does not open the vault
    assert user.password not in login_password.text
    opened = api.client.post(
        "/api/vault/unlock", json={"password": vault_password}, headers=headers
    )
    assert opened.status_code == 200, opened.text
    assert opened.json() == {"mode": "password", "unlocked": True}
    assert api.ctx.vault.sessions.is_open(user.id)
    locked = api.client.post("/api/vault/lock", headers=headers)
    assert locked.json() == {"mode": "password", "unlocked": False}
    assert not api.ctx.vault.sessions.is_open(user.id)


def test_an_open_vault_locks_itself_after_its_idle_timeout(api: Api) -> None:
    user, vault_password = _password_mode_user(api)
    headers = api.login(user).headers
    api.client.post("/api/vault/unlock", json={"password": vault_password}, headers=headers)
    api.clock.advance(api.ctx.settings.vault_idle_timeout)
    headers = api.login(user).headers  # the access token's clock moved too
    assert api.client.get("/api/vault", headers=headers).json()["unlocked"] is False


def test_wrong_vault_passwords_are_throttled(api: Api) -> None:
    user, vault_password = _password_mode_user(api)
    headers = api.login(user).headers
    statuses = [
        api.client.post(
            "/api/vault/unlock", json={"password": f"wrong {n}"}, headers=headers
        ).status_code
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    refused = api.client.post(
        "/api/vault/unlock", json={"password": vault_password}, headers=headers
    )
    assert refused.status_code == 429  # checked before any Argon2id work, right or wrong
    assert int(refused.headers["retry-after"]) >= 1


def test_a_service_mode_vault_is_always_open_and_viewers_change_nothing(api: Api) -> None:
    trader = api.make_user(Role.TRADER)
    headers = api.login(trader).headers
    assert api.client.get("/api/vault", headers=headers).json() == {
        "mode": "service",
        "unlocked": True,
    }
    conflict = api.client.post("/api/vault/unlock", json={"password": "x"}, headers=headers)
    assert conflict.status_code == 409
    viewer = api.make_user(Role.VIEWER)
    refused = api.client.post("/api/vault/lock", headers=api.login(viewer).headers)
    assert refused.status_code == 403


def test_expired_unlock_sessions_are_wiped_without_anyone_asking(api: Api) -> None:
    """The server's sweeper (web.app) wipes an expired key on its own schedule; before, the key
    stayed in memory until a vault status call or its user came by."""
    user, vault_password = _password_mode_user(api)
    headers = api.login(user).headers
    api.client.post("/api/vault/unlock", json={"password": vault_password}, headers=headers)
    sessions = api.ctx.vault.sessions
    held = sessions.held()
    assert held >= 1
    api.clock.advance(api.ctx.settings.vault_idle_timeout)
    assert sessions.held() == held  # expired, but its key is still in memory

    async def run_sweeper_briefly() -> None:
        sweeper = asyncio.create_task(sweep_unlock_sessions(sessions, every_s=0.01))
        await asyncio.sleep(0.1)
        sweeper.cancel()

    asyncio.run(run_sweeper_briefly())
    assert sessions.held() == 0
