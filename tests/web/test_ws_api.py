"""The WebSocket over real HTTP: tickets (one use, 30 s, bound to the address), the Origin
check, and what it streams (bot status, orders, fills, alerts) until the account is disabled."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, cast

import pytest
import sqlalchemy as sa
from tests.conftest import Capture
from tests.web.conftest import PUBLIC_URL, Api, TestUser, Tokens
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tradeguard.auth.accounts import Role
from tradeguard.store.models import BotRow, RiskFill, RiskOrder

POLICY_VIOLATION = 1008
bots = cast(sa.Table, BotRow.__table__)
orders = cast(sa.Table, RiskOrder.__table__)
fills = cast(sa.Table, RiskFill.__table__)


def _ticket(api: Api, tokens: Tokens) -> str:
    response = api.client.post("/api/ws-ticket", headers=tokens.headers)
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 30
    return str(response.json()["ticket"])


@contextmanager
def _socket(api: Api, ticket: str, origin: str | None = PUBLIC_URL) -> Iterator[ClientConnection]:
    url = api.url.replace("http://", "ws://") + f"/api/ws?ticket={ticket}"
    with connect(url, origin=origin, open_timeout=5) as ws:  # type: ignore[arg-type]
        yield ws


def _closed_with(ws: ClientConnection) -> int | None:
    """The close code, once the server closes (and no message came first)."""
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else None


def _next(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if message["type"] == kind:
            return message


def _add_bot(api: Api, user: TestUser) -> str:
    name = f"bot-{uuid.uuid4().hex[:8]}"
    with api.ctx.engine.begin() as conn:
        conn.execute(
            bots.insert().values(
                id=str(uuid.uuid4()),
                name=name,
                user_name=user.name,
                connection="paper",
                mode="paper",
                source="/nowhere",
                created_at=api.clock.now(),
            )
        )
    return name


def test_the_stream_sends_bot_status_orders_fills_and_alerts(api: Api) -> None:
    user = api.make_user(Role.TRADER)
    someone_else = api.make_user(Role.TRADER)
    bot, other_bot = _add_bot(api, user), _add_bot(api, someone_else)
    tokens = api.login(user)
    with _socket(api, _ticket(api, tokens)) as ws:
        status = _next(ws, "bot")
        assert status["bot"] == bot
        assert status["status"] == {"state": "never run"}
        now = api.clock.now()
        with api.ctx.engine.begin() as conn:
            for name, order_id in ((other_bot, "c-other"), (bot, "c-1")):
                conn.execute(
                    orders.insert().values(
                        client_order_id=order_id, bot=name, account="paper",
                        symbol="ETH/USDT", created_at=now,
                    )
                )  # fmt: skip
        order = _next(ws, "order")
        assert order["client_order_id"] == "c-1"
        assert order["bot"] == bot
        with api.ctx.engine.begin() as conn:
            conn.execute(
                fills.insert().values(
                    account="paper", trade_id="t-1", client_order_id="c-1", bot=bot,
                    symbol="ETH/USDT", side="buy", amount=Decimal("0.5"),
                    price=Decimal("2000.10"), fee=Decimal("0.001"), fee_currency="USDT",
                    filled_at=now,
                )
            )  # fmt: skip
        fill = _next(ws, "fill")
        assert fill["trade_id"] == "t-1"
        assert fill["price"] == "2000.10"
        # A stolen refresh token of another session used twice: an alert on this stream (the
        # stolen session itself ends, and with it any stream it had opened).
        laptop = api.login(user)
        renewed = api.client.post("/api/auth/refresh", headers=laptop.refresh_headers())
        assert renewed.status_code == 200
        reused = api.client.post("/api/auth/refresh", headers=laptop.refresh_headers())
        assert reused.status_code == 401
        alert = _next(ws, "alert")
        assert alert["event"] == "auth.refresh.reused"


def test_a_stream_shows_nothing_of_another_user(api: Api) -> None:
    user, other = api.make_user(), api.make_user()
    _add_bot(api, other)
    tokens = api.login(user)
    with _socket(api, _ticket(api, tokens)) as ws:
        with api.ctx.engine.begin() as conn:
            conn.execute(
                orders.insert().values(
                    client_order_id="c-x", bot="nobody", account="paper", symbol="ETH/USDT",
                    created_at=api.clock.now(),
                )
            )  # fmt: skip
        with pytest.raises(TimeoutError):
            ws.recv(timeout=2.5)


def test_a_ticket_works_once(api: Api) -> None:
    user = api.make_user()
    bot = _add_bot(api, user)
    tokens = api.login(user)
    ticket = _ticket(api, tokens)
    with _socket(api, ticket) as ws:
        assert _next(ws, "bot")["bot"] == bot  # the first use streams
    with _socket(api, ticket) as ws:
        assert _closed_with(ws) == POLICY_VIOLATION


@pytest.mark.parametrize("origin", [None, "https://evil.example", "http://trade.example.test"])
def test_a_foreign_or_missing_origin_is_refused_and_spends_no_ticket(
    api: Api, origin: str | None
) -> None:
    tokens = api.login(api.make_user())
    ticket = _ticket(api, tokens)
    with _socket(api, ticket, origin=origin) as ws:
        assert _closed_with(ws) == POLICY_VIOLATION
    with _socket(api, ticket) as ws, pytest.raises(TimeoutError):
        ws.recv(timeout=1.5)  # open, and quiet (no bots): the ticket was still good


def test_a_ticket_from_another_address_is_refused(api: Api) -> None:
    user = api.make_user()
    tokens = api.login(user)
    principal = api.ctx.accounts.authenticate(tokens.access)
    ticket = api.ctx.accounts.ws_ticket(principal, "203.0.113.5")
    with ticket.reveal_text() as text, _socket(api, text) as ws:
        assert _closed_with(ws) == POLICY_VIOLATION


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_expired_ticket_is_refused(api: Api) -> None:
    # Tickets in the database expire on our clock; in Redis on Redis's (tests/auth).
    tokens = api.login(api.make_user())
    ticket = _ticket(api, tokens)
    api.clock.advance(30)
    with _socket(api, ticket) as ws:
        assert _closed_with(ws) == POLICY_VIOLATION


def test_a_ticket_needs_a_bearer_token(api: Api) -> None:
    assert api.client.post("/api/ws-ticket").status_code == 401


def test_the_stream_ends_when_the_account_is_disabled(api: Api) -> None:
    admin = api.make_user(Role.ADMIN, totp=True)
    user = api.make_user()
    tokens = api.login(user)
    with _socket(api, _ticket(api, tokens)) as ws:
        admin_tokens = api.login(admin)
        response = api.client.patch(
            f"/api/users/{user.id}", json={"disabled": True}, headers=admin_tokens.headers
        )
        assert response.status_code == 200
        assert _closed_with(ws) == POLICY_VIOLATION


def test_the_stream_ends_with_the_session_that_opened_it(api: Api) -> None:
    user = api.make_user()
    tokens, other = api.login(user), api.login(user)
    with _socket(api, _ticket(api, tokens)) as ws, _socket(api, _ticket(api, other)) as kept:
        assert api.client.post("/api/auth/logout", headers=tokens.headers).status_code == 200
        assert _closed_with(ws) == POLICY_VIOLATION  # its session ended: so does the stream
        kept.ping().wait(5)  # another session's stream goes on
    ticket = _ticket(api, other)
    api.client.post("/api/auth/logout", headers=other.headers)
    with _socket(api, ticket) as late:  # a ticket of a session that has ended opens nothing
        assert _closed_with(late) == POLICY_VIOLATION


def test_the_ticket_never_reaches_a_log(api: Api, capture: Capture) -> None:
    tokens = api.login(api.make_user())
    ticket = _ticket(api, tokens)
    with _socket(api, ticket):
        pass
    client_side = ("httpx", "httpcore", "websockets.client")  # the test's own clients

    def server_side() -> str:
        return "\n".join(
            f"{r.name} {r.getMessage()}"
            for r in capture.records
            if not r.name.startswith(client_side)
        )

    deadline = time.monotonic() + 10  # the line is written when the server's side ends
    while "WS /api/ws" not in server_side() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ticket not in server_side()
    assert "WS /api/ws?ticket=[REDACTED] 101" in server_side()


def test_a_crash_of_one_of_the_users_bots_reaches_their_stream(api: Api) -> None:
    """Crash alerts name the bot by id and come from `system`: matched by the bot, not the
    actor."""
    from tradeguard.core.events import DomainEvent, EventName

    user = api.make_user()
    bot = _add_bot(api, user)
    with api.ctx.engine.connect() as conn:
        bot_id = conn.execute(sa.select(bots.c.id).where(bots.c.name == bot)).scalar_one()
    tokens = api.login(user)
    with _socket(api, _ticket(api, tokens)) as ws:
        _next(ws, "bot")
        api.ctx.audit.emit(
            DomainEvent(EventName.BOT_CRASHED, api.clock.now(), "system", bot_id, {"bot": bot})
        )
        assert _next(ws, "alert")["event"] == "bot.crashed"
