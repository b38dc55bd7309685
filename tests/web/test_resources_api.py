"""The resource API over real HTTP (credentials, bots, orders, positions, risk, audit), on
SQLite and on PostgreSQL + Redis: another user's objects are 404s like missing ones, viewers
change nothing, sensitive actions need a step-up, a key that can move funds is never stored,
hostile text is stored and returned inert, and the audit log is for admins."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.bots.test_run import bot_folder
from tests.sims.binance import BinanceSim, binance_sim
from tests.web.conftest import Api, ApiFactory, TestUser, Tokens

from tradeguard.audit.tables import entries
from tradeguard.auth.accounts import Role
from tradeguard.bots.registry import BotPaths, create_bot
from tradeguard.bots.sandbox import probe
from tradeguard.core.clock import ManualClock
from tradeguard.core.events import EventName, MemorySink
from tradeguard.marketdata import load_sample
from tradeguard.risk import (
    BotBook,
    BotLimits,
    OrderIntent,
    Position,
    RiskEngine,
    Scope,
    SqlRiskStore,
    TradingState,
)
from tradeguard.risk.breakers import BotMeters
from tradeguard.risk.guard import GuardedVenue
from tradeguard.risk.store import BotRecord, StoredOrder
from tradeguard.store.models import BotRow
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles
from tradeguard.venues.types import Liquidity, Side, Trade
from tradeguard.web import app as web_app
from tradeguard.web.routers import audit, bots, credentials, orders, risk

D = Decimal
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SYMBOL = "ETH/BTC"
CANDLES = load_sample("ETH_BTC-5m.csv").candles[:50]
HOSTILE = [
    "'; DROP TABLE users; --",
    '" OR 1=1 --',
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
]


@pytest.fixture(autouse=True)
def resource_routers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resource routers in the app (until web.app lists them itself)."""
    mine = [credentials.router, bots.router, orders.router, risk.router, audit.router]
    missing = [r for r in mine if r not in web_app.ROUTERS]
    monkeypatch.setattr(web_app, "ROUTERS", [*web_app.ROUTERS, *missing])


@dataclass
class Who:
    user: TestUser
    tokens: Tokens

    @property
    def headers(self) -> dict[str, str]:
        return self.tokens.headers

    @property
    def password(self) -> dict[str, str]:
        """A step-up for an account without a second factor."""
        return {"password": self.user.password}


def person(api: Api, role: Role = Role.TRADER, *, totp: bool = False) -> Who:
    user = api.make_user(role, totp=totp)
    return Who(user, api.login(user))


def add_bot(api: Api, owner: Who, *, connection: str = "paper", log: str = "") -> tuple[str, str]:
    """A bot row of `owner` (what `bots create` leaves behind, without the venv); id, name."""
    bot_id, name = str(uuid.uuid4()), f"bot-{secrets.token_hex(4)}"
    with api.ctx.engine.begin() as conn:
        conn.execute(
            sa.insert(BotRow).values(
                id=bot_id, name=name, user_name=owner.user.name, connection=connection,
                mode="paper", source="/src", created_at=NOW,
            )
        )  # fmt: skip
    logs = BotPaths.of(api.ctx.settings, bot_id).logs
    logs.mkdir(parents=True)
    (logs / "bot.log").write_text(log)
    return bot_id, name


def add_trading(api: Api, owner: Who, bot: str) -> None:
    """The risk engine's record of `bot`: a long position, an open order, a filled order."""
    store = SqlRiskStore(api.ctx.engine)
    book = BotBook()
    book.positions[SYMBOL] = Position(qty=D("0.5"), avg_price=D("0.05"), opened_at=NOW)
    account = f"paper:{owner.user.name}"
    record = BotRecord(bot, owner.user.name, account, "paper", book, BotMeters(), None, D(1))
    store.save_bot(record, NOW)
    store.record_order(StoredOrder(f"0x{bot}-open", bot, account, SYMBOL), NOW)
    for n, price in enumerate(("0.04", "0.06")):
        trade = Trade(
            f"t-{bot}-{n}", f"v-{bot}", f"0x{bot}-done", SYMBOL, Side.BUY, D(price), D("0.25"),
            D("0.0001"), "BTC", Liquidity.TAKER, NOW,
        )  # fmt: skip
        store.save_fill(record, [], NOW, trade=trade)


def add_paper_credential(api: Api, owner: Who, name: str = "paper-main") -> str:
    body = {"name": name, "venue": "paper", "fields": {}, **owner.password}
    response = api.client.post("/api/credentials", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["credential"]["id"])


def code_of(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def audited(api: Api, event: EventName) -> list[Any]:
    api.ctx.audit.sign_head()  # the writer has flushed what came before
    with api.ctx.engine.connect() as conn:
        return list(conn.execute(entries.select().where(entries.c.event == event.value)))


# -- ownership -----------------------------------------------------------------------------------


def test_another_users_objects_are_404_like_missing_ones(api: Api) -> None:
    alice, bob = person(api), person(api)
    a_bot, a_name = add_bot(api, alice, log="alice's bot says hello\n")
    add_trading(api, alice, a_name)
    a_cred = add_paper_credential(api, alice)
    SqlRiskStore(api.ctx.engine).save_state(
        Scope.bot(a_name), TradingState.HALTED, "alice's halt", "system", NOW
    )
    missing = str(uuid.uuid4())
    c = api.client
    for target in (a_bot, missing):
        attempts = [
            c.get(f"/api/bots/{target}", headers=bob.headers),
            c.post(f"/api/bots/{target}/start", json={"replay": ["ETH_BTC-5m.csv"]},
                   headers=bob.headers),
            c.post(f"/api/bots/{target}/stop", headers=bob.headers),
            c.get(f"/api/bots/{target}/logs", headers=bob.headers),
            c.post(f"/api/bots/{target}/promote", json=bob.password, headers=bob.headers),
            c.post("/api/risk/halt", json={"scope": "bot", "bot": target, "reason": "x"},
                   headers=bob.headers),
            c.post("/api/risk/reset",
                   json={"scope": "bot", "bot": target, "reason": "x", **bob.password},
                   headers=bob.headers),
            c.get("/api/orders", params={"bot": target}, headers=bob.headers),
        ]  # fmt: skip
        for response in attempts:
            assert response.status_code == 404, (response.request.url, response.text)
            assert response.json()["error"] == {
                "code": "NotFound",
                "message": f"no bot with id {target}; GET /api/bots lists yours",
            }
    for target in (a_cred, missing):
        gone = c.request("DELETE", f"/api/credentials/{target}", json=bob.password,
                         headers=bob.headers)  # fmt: skip
        assert gone.status_code == 404, gone.text
    # nothing of alice's shows in bob's lists, and alice's things are untouched
    for path in ("/api/bots", "/api/credentials", "/api/orders", "/api/positions"):
        listed = c.get(path, headers=bob.headers)
        assert listed.status_code == 200, listed.text
        assert listed.json() == [], path
    status = c.get("/api/risk/status", headers=bob.headers).json()
    assert status == {"states": [], "bots": [], "trips": []}
    assert [b["id"] for b in c.get("/api/bots", headers=alice.headers).json()] == [a_bot]
    assert len(c.get("/api/credentials", headers=alice.headers).json()) == 1
    assert SqlRiskStore(api.ctx.engine).states()[Scope.bot(a_name)].reason == "alice's halt"
    assert audited(api, EventName.RISK_RESET) == []
    assert audited(api, EventName.RISK_STATE_CHANGED) == []


def test_a_viewer_reads_their_own_but_changes_nothing(api: Api) -> None:
    viewer = person(api, Role.VIEWER)
    bot_id, name = add_bot(api, viewer, log="line\n")
    add_trading(api, viewer, name)
    c = api.client
    for path in (f"/api/bots/{bot_id}", f"/api/bots/{bot_id}/logs", "/api/orders",
                 "/api/positions", "/api/risk/status", "/api/credentials"):  # fmt: skip
        assert c.get(path, headers=viewer.headers).status_code == 200, path
    changes = [
        c.post("/api/credentials", json={"name": "p", "venue": "paper", **viewer.password},
               headers=viewer.headers),
        c.request("DELETE", f"/api/credentials/{uuid.uuid4()}", json=viewer.password,
                  headers=viewer.headers),
        c.post(f"/api/bots/{bot_id}/start", json={"replay": ["ETH_BTC-5m.csv"]},
               headers=viewer.headers),
        c.post(f"/api/bots/{bot_id}/stop", headers=viewer.headers),
        c.post(f"/api/bots/{bot_id}/promote", json=viewer.password, headers=viewer.headers),
        c.post("/api/risk/halt", json={"scope": "user", "reason": "x"}, headers=viewer.headers),
        c.post("/api/risk/reset", json={"scope": "user", "reason": "x", **viewer.password},
               headers=viewer.headers),
    ]  # fmt: skip
    for response in changes:
        assert response.status_code == 403, (response.request.url, response.text)
        assert "yours is viewer" in response.json()["error"]["message"]
    assert SqlRiskStore(api.ctx.engine).states() == {}
    assert c.get("/api/credentials", headers=viewer.headers).json() == []


def test_without_a_token_every_route_is_401(api: Api) -> None:
    for method, path in [("GET", "/api/bots"), ("GET", "/api/credentials"),
                         ("GET", "/api/orders"), ("GET", "/api/positions"),
                         ("GET", "/api/risk/status"), ("GET", "/api/audit/verify"),
                         ("POST", "/api/risk/halt")]:  # fmt: skip
        response = api.client.request(method, path, json={})
        assert response.status_code == 401, path


# -- credentials ---------------------------------------------------------------------------------


@pytest.fixture
def binance(api_factory: ApiFactory) -> Any:
    sim = BinanceSim()
    with binance_sim(sim) as url, api_factory(venue_api_urls={"binance": url}) as api:
        yield sim, api


def binance_key(sim: BinanceSim, **permissions: bool) -> dict[str, str]:
    api_key, secret = secrets.token_hex(16), secrets.token_hex(32)
    sim.add_key(api_key, secret, **permissions)
    return {"api_key": api_key, "api_secret": secret}


def test_credential_add_needs_a_step_up_and_a_trade_only_key(binance: Any) -> None:
    sim, api = binance
    alice = person(api)
    key = binance_key(sim, ip_restrict=True)
    body = {"name": "binance-main", "venue": "binance", "fields": key}
    c = api.client
    missing = c.post("/api/credentials", json=body, headers=alice.headers)
    assert (missing.status_code, code_of(missing)) == (401, "SecondFactorRequired")
    wrong = c.post("/api/credentials", json={**body, "password": "not it at all"},
                   headers=alice.headers)  # fmt: skip
    assert (wrong.status_code, code_of(wrong)) == (401, "InvalidCode")
    widened = binance_key(sim, withdrawals=True)
    refused = c.post("/api/credentials", json={**body, "fields": widened, **alice.password},
                     headers=alice.headers)  # fmt: skip
    assert (refused.status_code, code_of(refused)) == (422, "KeyPermissionRefused")
    assert "enableWithdrawals" in refused.json()["error"]["message"]
    assert c.get("/api/credentials", headers=alice.headers).json() == []

    added = c.post("/api/credentials", json={**body, **alice.password}, headers=alice.headers)
    assert added.status_code == 201, added.text
    shown = added.json()
    assert shown["checked"] is True
    assert shown["credential"]["key_check"]["can_withdraw"] is False
    assert shown["credential"]["key_check"]["trade_kinds"] == ["spot"]
    for response in (added, c.get("/api/credentials", headers=alice.headers)):
        assert key["api_secret"] not in response.text
        assert key["api_key"] not in response.text  # only its masked form
    [event] = audited(api, EventName.VAULT_CREDENTIAL_ADDED)
    assert (event.actor, event.ip) == (api.ctx.audit.actor(f"user:{alice.user.id}"), "127.0.0.1")
    assert len(audited(api, EventName.VENUE_KEY_REFUSED)) == 1

    taken = c.post("/api/credentials", json={**body, **alice.password}, headers=alice.headers)
    assert taken.status_code == 409
    cred = shown["credential"]["id"]
    no_proof = c.request("DELETE", f"/api/credentials/{cred}", headers=alice.headers, json={})
    assert no_proof.status_code == 401
    removed = c.request("DELETE", f"/api/credentials/{cred}", json=alice.password,
                        headers=alice.headers)  # fmt: skip
    assert removed.status_code == 200, removed.text
    assert c.get("/api/credentials", headers=alice.headers).json() == []
    [event] = audited(api, EventName.VAULT_CREDENTIAL_REMOVED)
    assert event.ip == "127.0.0.1"


def test_a_credential_a_bot_trades_with_is_not_removed(api: Api) -> None:
    alice = person(api)
    body = {"name": "paper-live", "venue": "paper", "fields": {}}
    c = api.client
    added = c.post("/api/credentials", json={**body, **alice.password}, headers=alice.headers)
    assert added.status_code == 201, added.text
    _, bot = add_bot(api, alice, connection="paper-live")
    cred = added.json()["credential"]["id"]
    refused = c.request("DELETE", f"/api/credentials/{cred}", json=alice.password,
                        headers=alice.headers)  # fmt: skip
    assert refused.status_code == 409
    assert f"bot {bot} trades with credential paper-live" in refused.text
    assert len(c.get("/api/credentials", headers=alice.headers).json()) == 1
    assert audited(api, EventName.VAULT_CREDENTIAL_REMOVED) == []


def test_with_a_second_factor_the_step_up_is_a_fresh_code(api: Api) -> None:
    alice = person(api, totp=True)
    body = {"name": "paper-main", "venue": "paper", "fields": {}}
    c = api.client
    by_password = c.post("/api/credentials", json={**body, **alice.password},
                         headers=alice.headers)  # fmt: skip
    assert (by_password.status_code, code_of(by_password)) == (401, "SecondFactorRequired")
    code = api.code(alice.user)
    added = c.post("/api/credentials", json={**body, "code": code}, headers=alice.headers)
    assert added.status_code == 201, added.text
    replayed = c.request("DELETE", f"/api/credentials/{added.json()['credential']['id']}",
                         json={"code": code}, headers=alice.headers)  # fmt: skip
    assert replayed.status_code == 401


def test_bad_credential_fields_are_refused_without_echo(api: Api) -> None:
    alice = person(api)
    secret_value = "sEcReT-" + secrets.token_hex(8)
    c = api.client
    cases = [
        ({"venue": "binance", "fields": {"api_key": "short", "api_secret": secret_value}}, 400),
        ({"venue": "binance", "fields": {"api_secret": secret_value}}, 400),
        ({"venue": "binance", "fields": {"api_key": secret_value, "api_secret": secret_value,
                                         "extra": secret_value}}, 400),
        ({"venue": "nowhere", "fields": {}}, 422),
        ({"venue": "paper", "fields": {"api_key": "x" * 9000}}, 422),
    ]  # fmt: skip
    for extra, expected in cases:
        body = {"name": "k", **extra, **alice.password}
        response = c.post("/api/credentials", json=body, headers=alice.headers)
        assert response.status_code == expected, (extra, response.text)
        assert secret_value not in response.text
    assert c.get("/api/credentials", headers=alice.headers).json() == []


# -- bots ----------------------------------------------------------------------------------------


def test_bot_detail_and_logs_are_redacted_and_bounded(api: Api) -> None:
    alice = person(api)
    lines = [f"candle {n}" for n in range(3000)] + [
        "signed with Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789"
    ]
    bot_id, _ = add_bot(api, alice, log="\n".join(lines) + "\n")
    c = api.client
    shown = c.get(f"/api/bots/{bot_id}", headers=alice.headers).json()
    assert shown["status"] == {
        "state": "never run", "pid": None, "restarts": None, "last_exit": None,
        "connected": None, "requests": None, "rss_bytes": None, "cpu_seconds": None,
    }  # fmt: skip
    assert (shown["trading"], shown["mode"], shown["equity"]) == ("ACTIVE", "paper", None)
    tail = c.get(f"/api/bots/{bot_id}/logs", params={"lines": 3}, headers=alice.headers).json()
    assert tail["lines"][:2] == ["candle 2998", "candle 2999"]
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in tail["lines"][2]
    too_many = c.get(f"/api/bots/{bot_id}/logs", params={"lines": 1001}, headers=alice.headers)
    assert too_many.status_code == 422


def test_start_refuses_live_connections_and_server_paths(api: Api) -> None:
    alice = person(api)
    live, _ = add_bot(api, alice, connection="binance-main")
    paper, _ = add_bot(api, alice)
    c = api.client
    refused = c.post(f"/api/bots/{live}/start", json={"replay": ["ETH_BTC-5m.csv"]},
                     headers=alice.headers)  # fmt: skip
    assert (refused.status_code, code_of(refused)) == (409, "Conflict")
    assert "does not host live bots yet" in refused.json()["error"]["message"]
    for replay in (["/etc/passwd"], ["../../tradeguard.db"], ["sample:ETH_BTC-5m.csv"], HOSTILE):
        response = c.post(f"/api/bots/{paper}/start", json={"replay": replay},
                          headers=alice.headers)  # fmt: skip
        assert response.status_code == 400, (replay, response.text)
        assert "GET /api/bots/samples" in response.json()["error"]["message"]
    assert audited(api, EventName.BOT_START_REQUESTED) == []
    samples = c.get("/api/bots/samples", headers=alice.headers).json()
    assert "ETH_BTC-5m.csv" in samples
    stopped = c.post(f"/api/bots/{paper}/stop", headers=alice.headers)
    assert stopped.status_code == 200
    assert stopped.json()["status"]["state"] == "never run"


# -- orders and positions ------------------------------------------------------------------------


def test_orders_and_positions_of_the_callers_bots(api: Api) -> None:
    alice = person(api)
    first, first_name = add_bot(api, alice)
    _, second_name = add_bot(api, alice)
    add_trading(api, alice, first_name)
    add_trading(api, alice, second_name)
    c = api.client

    def get(**params: Any) -> list[dict[str, Any]]:
        response = c.get("/api/orders", params=params, headers=alice.headers)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    assert len(get()) == 4
    [open_order] = get(bot=first, status="open")
    assert (open_order["status"], open_order["filled"], open_order["side"]) == ("open", "0", None)
    [filled] = get(bot=first, status="filled")
    assert filled["client_order_id"] == f"0x{first_name}-done"
    assert (filled["side"], D(filled["filled"]), D(filled["avg_price"])) == (
        "buy", D("0.5"), D("0.05"),
    )  # fmt: skip
    assert {k: D(v) for k, v in filled["fees"].items()} == {"BTC": D("0.0002")}
    assert len(get(limit=1)) == 1
    for bad in ({"status": "'; DROP TABLE risk_orders; --"}, {"limit": 0}, {"limit": 501},
                {"bot": "<script>alert(1)</script>"}):  # fmt: skip
        response = c.get("/api/orders", params=bad, headers=alice.headers)
        assert response.status_code == 422, bad
        assert "DROP" not in response.text
        assert "<script>" not in response.text
    positions = c.get("/api/positions", headers=alice.headers).json()
    assert [(p["bot"], p["symbol"], p["qty"], p["avg_price"]) for p in positions] == [
        (n, SYMBOL, "0.5", "0.05") for n in sorted((first_name, second_name))
    ]


# -- risk ----------------------------------------------------------------------------------------


def test_halt_and_reset_own_scopes_with_rights_and_step_up(api: Api) -> None:
    alice = person(api)
    bot_id, name = add_bot(api, alice)
    c = api.client

    def halt(**body: Any) -> httpx.Response:
        return c.post("/api/risk/halt", json={"reason": "x", **body}, headers=alice.headers)

    everyone = halt(scope="all")
    assert (everyone.status_code, code_of(everyone)) == (403, "Forbidden")
    assert halt(scope="bot").status_code == 422  # a bot scope names its bot
    assert halt(scope="user", bot=bot_id).status_code == 422
    halted = halt(scope="bot", bot=bot_id, reason="fat finger")
    assert halted.status_code == 200, halted.text
    assert halted.json() == {
        "scope": f"bot:{name}", "state": "HALTED", "changed": True, "canceled": [], "failed": 0,
    }  # fmt: skip
    softer = halt(scope="bot", bot=bot_id, reducing=True).json()
    assert (softer["state"], softer["changed"]) == ("HALTED", False)  # never loosens
    [changed] = audited(api, EventName.RISK_STATE_CHANGED)
    assert (changed.actor, changed.ip) == (api.ctx.audit.actor(f"user:{alice.user.id}"),
                                           "127.0.0.1")  # fmt: skip
    shown = c.get(f"/api/bots/{bot_id}", headers=alice.headers).json()
    assert shown["trading"] == "HALTED"

    reset = {"scope": "bot", "bot": bot_id, "reason": "checked"}
    no_proof = c.post("/api/risk/reset", json=reset, headers=alice.headers)
    assert no_proof.status_code == 401
    done = c.post("/api/risk/reset", json={**reset, **alice.password}, headers=alice.headers)
    assert done.status_code == 200, done.text
    assert done.json() == {"scope": f"bot:{name}", "state": "ACTIVE", "previous": "HALTED"}
    again = c.post("/api/risk/reset", json={**reset, **alice.password}, headers=alice.headers)
    assert again.status_code == 409

    # an operator's halt of alice is not alice's to lift; the system's (a breaker) is
    store = SqlRiskStore(api.ctx.engine)
    store.save_state(Scope.user(alice.user.name), TradingState.HALTED, "incident", "operator", NOW)
    user_reset = {"scope": "user", "reason": "mine now", **alice.password}
    forbidden = c.post("/api/risk/reset", json=user_reset, headers=alice.headers)
    assert (forbidden.status_code, code_of(forbidden)) == (403, "Forbidden")
    assert halt(scope="user").json()["changed"] is False  # and a halt does not take it over
    assert store.states()[Scope.user(alice.user.name)].actor == "operator"
    store.save_state(Scope.user(alice.user.name), TradingState.HALTED, "breaker", "system", NOW)
    assert c.post("/api/risk/reset", json=user_reset, headers=alice.headers).status_code == 200


def test_an_admin_halts_everything_and_sees_the_global_state(api: Api) -> None:
    admin, alice = person(api, Role.ADMIN, totp=True), person(api)
    c = api.client
    halted = c.post("/api/risk/halt", json={"scope": "all", "reason": "venue incident"},
                    headers=admin.headers)  # fmt: skip
    assert halted.status_code == 200, halted.text
    assert halted.json()["scope"] == "global"
    admin_view = c.get("/api/risk/status", headers=admin.headers).json()
    assert [s["scope"] for s in admin_view["states"]] == ["global"]
    assert c.get("/api/risk/status", headers=alice.headers).json()["states"] == []
    bot_id, _ = add_bot(api, alice)
    assert c.get(f"/api/bots/{bot_id}", headers=alice.headers).json()["trading"] == "HALTED"
    lift = {"scope": "all", "reason": "over", "code": api.code(admin.user)}
    assert c.post("/api/risk/reset", json=lift, headers=admin.headers).status_code == 200


def test_promotion_needs_a_step_up_and_overrides_are_for_admins(api: Api) -> None:
    alice = person(api)
    bot_id, name = add_bot(api, alice)
    c = api.client
    path = f"/api/bots/{bot_id}/promote"
    untraded = c.post(path, json=alice.password, headers=alice.headers)
    assert untraded.status_code == 409
    add_trading(api, alice, name)
    assert c.post(path, json={}, headers=alice.headers).status_code == 401
    refused = c.post(path, json=alice.password, headers=alice.headers)
    assert refused.status_code == 200, refused.text
    verdict = refused.json()
    assert verdict["promoted"] is False
    assert verdict["failures"][0].startswith("closed paper trades: 0, needs at least 100")
    assert verdict["thresholds"]["min_trades"] == 100
    override = {"override": True, "reason": "trust me", **alice.password}
    forced = c.post(path, json=override, headers=alice.headers)
    assert (forced.status_code, code_of(forced)) == (403, "Forbidden")
    assert len(audited(api, EventName.BOT_PROMOTION_REFUSED)) == 1
    assert audited(api, EventName.BOT_PROMOTED) == []


# -- hostile text --------------------------------------------------------------------------------


def test_hostile_text_is_stored_and_returned_inert(api: Api) -> None:
    alice = person(api)
    bot_id, _ = add_bot(api, alice)
    c = api.client
    for text in HOSTILE:  # free text: stored and returned exactly as given
        halted = c.post("/api/risk/halt", json={"scope": "bot", "bot": bot_id, "reason": text},
                        headers=alice.headers)  # fmt: skip
        assert halted.status_code == 200, halted.text
        status = c.get("/api/risk/status", headers=alice.headers)
        assert status.headers["content-type"] == "application/json"
        assert status.headers["x-content-type-options"] == "nosniff"
        [state] = status.json()["states"]
        assert state["reason"] == text
        reset = {"scope": "bot", "bot": bot_id, "reason": text, **alice.password}
        assert c.post("/api/risk/reset", json=reset, headers=alice.headers).status_code == 200
    reasons = [e.details for e in audited(api, EventName.RISK_RESET)]
    assert [json.loads(d)["reason"] for d in reasons] == HOSTILE
    for text in HOSTILE:  # names and ids have a shape: refused, never echoed, never a 5xx
        for response in (
            c.post("/api/credentials", json={"name": text, "venue": "paper", **alice.password},
                   headers=alice.headers),
            c.get(f"/api/bots/{text}", headers=alice.headers),
            c.post("/api/risk/halt", json={"scope": "bot", "bot": text, "reason": "x"},
                   headers=alice.headers),
            c.get("/api/orders", params={"status": text}, headers=alice.headers),
        ):  # fmt: skip
            assert 400 <= response.status_code < 500, (text, response.text)
            assert text not in response.text
    assert c.get("/api/bots", headers=alice.headers).status_code == 200  # the tables are there
    with api.ctx.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(BotRow)) == 1


# -- audit ---------------------------------------------------------------------------------------


def test_the_audit_log_is_for_admins(api: Api) -> None:
    admin = person(api, Role.ADMIN, totp=True)
    c = api.client
    for role in (Role.TRADER, Role.VIEWER):
        who = person(api, role)
        for path in ("/api/audit/verify", "/api/audit/export"):
            response = c.get(path, headers=who.headers)
            assert (response.status_code, code_of(response)) == (403, "Forbidden"), path
    verified = c.get("/api/audit/verify", headers=admin.headers)
    assert verified.status_code == 200, verified.text
    report = verified.json()
    assert report["ok"] is True
    assert report["findings"] == []
    api.ctx.audit.sign_head()
    first = c.get("/api/audit/export", params={"limit": 2}, headers=admin.headers).json()
    assert [e["seq"] for e in first["entries"]] == [0, 1]
    assert first["next_seq"] == 2
    rest = c.get("/api/audit/export", params={"from_seq": 2, "limit": 5000},
                 headers=admin.headers).json()  # fmt: skip
    assert rest["next_seq"] is None
    seqs = [e["seq"] for e in rest["entries"]]
    assert seqs == list(range(2, 2 + len(seqs)))
    assert all(len(e["actor"] or "0" * 64) == 64 for e in rest["entries"])  # hashes, not ids
    for bad in ({"limit": 0}, {"limit": 5001}, {"from_seq": -1}):
        assert c.get("/api/audit/export", params=bad, headers=admin.headers).status_code == 422


# -- the real paths: a halt cancels at the venue, a start runs the supervisor ----------------------


def place_paper_orders(api: Api, owner: Who, bot: str) -> list[str]:
    """Two resting limit orders of `bot` on `owner`'s paper account, through the risk engine
    (journaled as the gateway does)."""
    db, account = api.ctx.engine, f"paper:{owner.user.name}"
    market = market_from_candles(SYMBOL, CANDLES, amount_step=D("0.001"))
    clock = ManualClock(CANDLES[0].at + timedelta(minutes=5))
    paper = PaperVenue(
        db, account=owner.user.name, markets={SYMBOL: market}, clock=clock,
        config=PaperConfig(starting_balances={"BTC": D(10)}),
    )  # fmt: skip
    engine = RiskEngine(clock=clock, events=MemorySink(), store=SqlRiskStore(db))
    engine.add_account(account, {SYMBOL: market}, asyncio.run(paper.fetch_balance()))
    limits = BotLimits(capital=D(10), symbols=frozenset({SYMBOL}), blocked_zones=frozenset())
    engine.register_bot(bot, user=owner.user.name, account=account, limits=limits)
    guard = GuardedVenue(engine, paper, account=account, journal=SqlRiskStore(db))

    async def place() -> list[str]:
        await paper.on_candle(SYMBOL, CANDLES[0])
        await guard.on_close(SYMBOL, CANDLES[0].close)
        tick = D("0.000001")
        price = (CANDLES[0].close * D("0.98") / tick).to_integral_value() * tick
        ids = [f"0x{n:032x}" for n in range(2)]
        for cid in ids:
            await guard.submit(bot, OrderIntent(cid, SYMBOL, "buy", "limit", D(1), price))
        return ids

    return asyncio.run(place())


def test_a_halt_cancels_the_bots_open_orders_at_the_venue(api: Api) -> None:
    alice = person(api)
    bot_id, name = add_bot(api, alice)
    ids = place_paper_orders(api, alice, name)
    halted = api.client.post(
        "/api/risk/halt", json={"scope": "user", "reason": "stop"}, headers=alice.headers
    )
    assert halted.status_code == 200, halted.text
    body = halted.json()
    assert body["failed"] == 0
    assert sorted((c["client_order_id"], c["result"]) for c in body["canceled"]) == [
        (cid, "canceled") for cid in ids
    ]
    assert SqlRiskStore(api.ctx.engine).orders([name]) == []
    [summary] = audited(api, EventName.RISK_ORDERS_CANCELED)
    assert json.loads(summary.details) == {"canceled": 2, "failed": 0}
    open_orders = api.client.get(
        "/api/orders", params={"bot": bot_id, "status": "open"}, headers=alice.headers
    )
    assert open_orders.json() == []


@pytest.fixture
def sqlite_api_with_sandbox(backend: str, api_factory: ApiFactory) -> Iterator[Api]:
    """The supervisor of a started bot reads its settings from the server's environment; these
    tests give the server settings in code (a database URL among them on PostgreSQL), so the
    end-to-end start runs on SQLite, where the data dir is all it needs to share."""
    if backend != "sqlite":
        pytest.skip("the supervisor finds the database by the environment; SQLite only here")
    support = probe()
    if not support.ok:
        pytest.skip(str(support.reason))
    runtime = Path(tempfile.mkdtemp(dir="/tmp"))  # a socket path has 107 bytes at most
    try:
        with api_factory(runtime_dir=runtime) as api:
            yield api
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_bot_starts_runs_and_stops_over_the_api(
    sqlite_api_with_sandbox: Api, tmp_path: Path
) -> None:
    api = sqlite_api_with_sandbox
    alice = person(api)
    info = create_bot(
        api.ctx.engine, api.ctx.settings, bot_folder(tmp_path), user=alice.user.name,
        events=api.ctx.audit, name="twice",
    )  # fmt: skip
    c = api.client
    path = f"/api/bots/{info.id}"
    # speed 1: candles come in real time, so the bot is still running when it is stopped
    start = {"replay": ["ETH_BTC-5m.csv"], "speed": 1}
    started = c.post(f"{path}/start", json=start, headers=alice.headers)
    assert started.status_code == 202, started.text
    assert started.json()["status"]["state"] in ("starting", "running")
    assert c.post(f"{path}/start", json=start, headers=alice.headers).status_code == 409
    deadline = time.monotonic() + 60
    while c.get(path, headers=alice.headers).json()["status"]["state"] != "running":
        assert time.monotonic() < deadline, "the supervisor never reported running"
        time.sleep(0.5)
    stopped = c.post(f"{path}/stop", headers=alice.headers)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"]["state"] == "stopped"
    log = c.get(f"{path}/logs", headers=alice.headers).json()["lines"]
    assert any("venue='paper'" in line for line in log)  # the bot's own line, masked
    for event in (EventName.BOT_START_REQUESTED, EventName.BOT_STOP_REQUESTED):
        [entry] = audited(api, event)
        assert (entry.actor, entry.ip) == (
            api.ctx.audit.actor(f"user:{alice.user.id}"), "127.0.0.1",
        )  # fmt: skip
    assert len(audited(api, EventName.BOT_STARTED)) == 1
