"""New-address tracking: where each user logs in and trades from, and an event the first time
an address is seen (for anomaly rules)."""

from __future__ import annotations

import sqlalchemy as sa
from tests.web.conftest import ApiFactory

from tradeguard.auth.accounts import Role


def _addresses(engine: sa.Engine, user_id: int) -> set[tuple[str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT ip, kind, count FROM auth_user_addresses WHERE user_id = :u"),
            {"u": user_id},
        )
        return {(r.ip, r.kind, r.count) for r in rows}


def _new_address_events(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM audit_log WHERE event = 'auth.ip.new'")
        return int(conn.execute(query).scalar_one())


def test_logins_and_trading_changes_record_their_addresses(api_factory: ApiFactory) -> None:
    with api_factory(trusted_proxies=["127.0.0.1/32"]) as api:
        user = api.make_user(Role.TRADER)
        home, cafe = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "203.0.113.50"}
        tokens = api.login(user, **home)
        api.login(user, **home)
        assert _addresses(api.ctx.engine, user.id) == {("198.51.100.7", "login", 2)}
        assert _new_address_events(api.ctx.engine) == 1
        reads = api.client.get("/api/vault", headers={**tokens.headers, **cafe})
        assert reads.status_code == 200  # reading records nothing
        assert _addresses(api.ctx.engine, user.id) == {("198.51.100.7", "login", 2)}
        for _ in range(2):
            changed = api.client.post("/api/vault/lock", headers={**tokens.headers, **cafe})
            assert changed.status_code == 200, changed.text
        assert _addresses(api.ctx.engine, user.id) == {
            ("198.51.100.7", "login", 2),
            ("203.0.113.50", "trade", 2),
        }
        assert _new_address_events(api.ctx.engine) == 2
