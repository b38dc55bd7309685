"""GET /api/risk/status over real HTTP, on SQLite and on PostgreSQL: the trips a caller sees
are picked by the database from the caller's own scopes, however many other users' trips are
newer."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from tests.web.conftest import Api
from tests.web.test_resources_api import NOW, add_bot, person

from tradeguard.auth.accounts import Role
from tradeguard.risk import GLOBAL, Breaker, Scope, SqlRiskStore
from tradeguard.risk.store import TripRecord
from tradeguard.store.models import RiskTrip

D = Decimal
OTHERS = 501  # more than the newest 500 the route used to read before filtering


def trip(scope: Scope, minutes: int) -> TripRecord:
    return TripRecord(
        scope, Breaker.CONSECUTIVE_LOSSES, D(3), D(3), NOW + timedelta(minutes=minutes)
    )


def add_trips(api: Api, scopes: list[Scope], first_minute: int) -> None:
    """One trip of each scope, in one statement (the store writes one per trip)."""
    rows = [
        {
            "scope": str(t.scope), "breaker": t.breaker.value, "value": t.value,
            "limit": t.limit, "tripped_at": t.tripped_at,
        }
        for t in (trip(s, first_minute + n) for n, s in enumerate(scopes))
    ]  # fmt: skip
    with api.ctx.engine.begin() as conn:
        conn.execute(sa.insert(RiskTrip.__table__), rows)


def test_a_trader_sees_their_own_trips_however_many_newer_ones_others_have(api: Api) -> None:
    alice, bob, admin = person(api), person(api), person(api, Role.ADMIN, totp=True)
    _, a_bot = add_bot(api, alice)
    _, b_bot = add_bot(api, bob)
    store = SqlRiskStore(api.ctx.engine)
    store.add_trip(trip(Scope.bot(a_bot), 0))
    store.add_trip(trip(Scope.user(alice.user.name), 1))
    store.add_trip(trip(GLOBAL, 2))
    others = [Scope.bot(b_bot), Scope.user(bob.user.name), Scope.bot("someone-elses")]
    add_trips(api, [others[n % 3] for n in range(OTHERS)], 3)  # all newer than alice's

    status = api.client.get("/api/risk/status", headers=alice.headers)
    assert status.status_code == 200, status.text
    assert [t["scope"] for t in status.json()["trips"]] == [
        f"user:{alice.user.name}",
        f"bot:{a_bot}",
    ]  # newest first; the global trip is for admins
    seen_by_bob = api.client.get("/api/risk/status", headers=bob.headers).json()["trips"]
    assert len(seen_by_bob) == 20  # the newest 20 of bob's 334, none of anyone else's
    assert {t["scope"] for t in seen_by_bob} == {f"bot:{b_bot}", f"user:{bob.user.name}"}
    seen_by_admin = api.client.get("/api/risk/status", headers=admin.headers).json()["trips"]
    assert [t["scope"] for t in seen_by_admin] == ["global"]  # their own scopes and global
