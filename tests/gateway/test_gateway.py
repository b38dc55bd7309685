"""The order gateway end to end: the real SDK client on a real Unix socket, the real gateway,
risk engine, audit log and paper venue behind it. Each test asserts what happened (replies,
audit entries, venue rows, the engine's book), never how long it took."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import stat
import struct
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from tests.gateway.conftest import (
    ACCOUNT,
    ALPHA,
    BETA,
    FAR_BELOW,
    LIMITS,
    MARK,
    SYMBOL,
    World,
    WorldFactory,
    candle,
    intent_seq,
    next_ts,
)

from tradeguard.bots.sdk import Connection, GatewayError, Order, OrderRejected, wire
from tradeguard.bots.sdk.client import GatewayClient
from tradeguard.bots.sdk.types import Candle, Fill, Position
from tradeguard.gateway.server import MAX_IN_FLIGHT, VIOLATION_LIMIT
from tradeguard.venues.types import OrderStatus, Side

D = Decimal
CID = re.compile(r"0x[0-9a-f]{32}")


def connection(client: GatewayClient, hello: dict[str, Any], name: str = "paper") -> Connection:
    """The SDK's `Connection` for `name`, built from what the gateway said at hello."""
    [info] = [c for c in hello["connections"] if c["name"] == name]
    return Connection(client, info["name"], info["venue"], info["key"])


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until `condition` holds (bounded in steps, not in time)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


def details(row: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(row.details)
    return parsed


# -- the socket and who may connect ------------------------------------------------------------


def test_the_socket_is_created_0600(world: World) -> None:
    async def scenario() -> None:
        async with world.serving(ALPHA):
            mode = os.stat(world.socket(ALPHA)).st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600

    asyncio.run(scenario())


async def _refused(world: World, token: str | None = None) -> dict[str, Any] | None:
    """The SDK's connect, refused: its error as the reply it came in."""
    with pytest.raises(GatewayError) as refused:
        await world.connect(ALPHA, token=token)
    return {"ok": False, "error": {"code": refused.value.code, "message": refused.value.message}}


async def _wrong_token(world: World) -> dict[str, Any] | None:
    return await _refused(world, token=secrets.token_hex(32))


async def _peer_not_the_bot(world: World) -> dict[str, Any] | None:
    world.allowed_pids.clear()  # the right token, but from a process outside the bot's sandbox
    try:
        return await _refused(world)
    finally:
        world.allowed_pids.add(os.getpid())


async def _missing_hello(world: World) -> dict[str, Any] | None:
    raw = await world.raw(ALPHA, hello=False)
    raw.writer.write_eof()  # connects, sends nothing, says it is done
    return await raw.reply()


async def _first_frame_not_hello(world: World) -> dict[str, Any] | None:
    raw = await world.raw(ALPHA, hello=False)
    raw.send({"id": 1, "op": "ping"})
    return await raw.reply()


async def _hello_without_token(world: World) -> dict[str, Any] | None:
    raw = await world.raw(ALPHA, hello=False)
    raw.send({"id": 0, "op": "hello", "protocol": 1})
    return await raw.reply()


async def _first_frame_not_json(world: World) -> dict[str, Any] | None:
    raw = await world.raw(ALPHA, hello=False)
    raw.send_body(b"\xff\xfe not json")
    return await raw.reply()


@pytest.mark.parametrize(
    ("attempt", "reason"),
    [
        (_wrong_token, "wrong token"),
        (_peer_not_the_bot, f"peer pid {os.getpid()} is not this bot's process"),
        (_missing_hello, "closed before hello"),
        (_first_frame_not_hello, "first frame is not a hello with a token"),
        (_hello_without_token, "first frame is not a hello with a token"),
        (_first_frame_not_json, "hello failed: FrameError"),
    ],
    ids=["wrong-token", "peer-rejected", "missing-hello", "not-hello", "no-token", "not-json"],
)
def test_a_connection_that_fails_authentication_is_refused_and_audited(
    world: World,
    attempt: Callable[[World], Awaitable[dict[str, Any] | None]],
    reason: str,
) -> None:
    async def scenario() -> None:
        async with world.serving(ALPHA) as [gateway]:
            reply = await attempt(world)
            assert reply is not None
            assert reply["ok"] is False
            assert reply["error"] == {"code": "auth", "message": reason}
            assert not gateway.connected.is_set()
            # the refusal was for that connection only: the bot itself still gets in
            client, hello = await world.connect(ALPHA)
            assert hello["bot"]["name"] == "alpha"
            assert (await client.request("ping"))["ok"] is True
            await client.close()

    asyncio.run(scenario())
    [row] = world.audited("gateway.auth.failed")
    assert row.subject == ALPHA.id
    assert details(row) == {"reason": reason}
    assert world.venue_orders() == 0


def test_a_second_connection_while_one_is_open_is_refused(world: World) -> None:
    async def scenario() -> None:
        async with world.serving(ALPHA) as [gateway]:
            first, _ = await world.connect(ALPHA)
            with pytest.raises(GatewayError) as refused:
                await world.connect(ALPHA)  # the right token, the right process
            assert refused.value.code == "auth"
            assert refused.value.message == "the bot is already connected"
            assert (await first.request("ping"))["ok"] is True  # the first one is untouched
            await first.close()
            await until(lambda: not gateway.connected.is_set())
            again, _ = await world.connect(ALPHA)  # once it is gone, the bot may reconnect
            assert (await again.request("ping"))["ok"] is True
            await again.close()

    asyncio.run(scenario())
    [row] = world.audited("gateway.auth.failed")
    assert details(row) == {"reason": "the bot is already connected"}


# -- the order path ------------------------------------------------------------------------------


def test_an_approved_order_round_trips_and_its_intent_is_durable_before_the_venue_sees_it(
    world: World,
) -> None:
    async def scenario() -> tuple[Order, Order, list[Order]]:
        async with world.serving(ALPHA):
            client, hello = await world.connect(ALPHA)
            paper = connection(client, hello)
            assert repr(paper) == "Connection(name='paper', venue='paper', key='pape***')"
            resting = await paper.limit(SYMBOL, "buy", "0.1", FAR_BELOW)
            market = await paper.buy(SYMBOL, D("0.05"))
            listed = await paper.open_orders()
            await client.close()
            return resting, market, listed

    resting, market, listed = asyncio.run(scenario())
    for order, kind in ((resting, "limit"), (market, "market")):
        cid = order.client_order_id
        assert CID.fullmatch(cid), cid  # generated by the gateway, not by the bot
        assert (order.connection, order.symbol, order.side, order.type) == (
            "paper", SYMBOL, "buy", kind,
        )  # fmt: skip
        assert order.status == "open"  # the paper venue fills on the next candle
        seq = intent_seq(world.db, cid)
        assert seq is not None
        # the venue's own hook read the committed intent when the order arrived
        assert world.venue.intent_seq_on_arrival[cid] == seq
        at_venue = asyncio.run(world.venue.fetch_order(SYMBOL, client_order_id=cid))
        assert at_venue.status is OrderStatus.OPEN
        assert at_venue.amount == order.amount
        assert cid in world.engine.book("alpha").orders
    assert (resting.amount, resting.price) == (D("0.1"), FAR_BELOW)
    assert market.amount == D("0.05")
    assert {o.client_order_id for o in listed} == {
        resting.client_order_id,
        market.client_order_id,
    }
    [intent, _] = world.audited("order.intent")
    assert intent.subject == resting.client_order_id
    assert details(intent) == {
        "account": ACCOUNT, "symbol": SYMBOL, "side": "buy", "type": "limit", "amount": "0.1",
        "price": str(FAR_BELOW), "time_in_force": "GTC", "reduce_only": False,
    }  # fmt: skip
    assert world.venue_orders() == 2


@pytest.mark.parametrize("kind", ["limit", "market"])
def test_a_risk_denial_comes_back_as_order_rejected_and_the_venue_never_sees_it(
    world: World, kind: str
) -> None:
    async def scenario() -> None:
        async with world.serving(ALPHA):
            client, hello = await world.connect(ALPHA)
            paper = connection(client, hello)
            # ~1 BTC, over max_order_notional 0.5
            order = (
                paper.limit(SYMBOL, "buy", "10", MARK)
                if kind == "limit"
                else paper.buy(SYMBOL, "10")
            )
            with pytest.raises(OrderRejected) as denied:
                await order
            assert denied.value.code == "risk.order_notional"
            assert "max_order_notional" in denied.value.message
            assert await paper.open_orders() == []
            await client.close()

    asyncio.run(scenario())
    assert world.venue_orders() == 0
    assert world.venue.intent_seq_on_arrival == {}
    assert world.audited("order.intent") == []
    assert world.engine.book("alpha").orders == {}


# -- malformed input -------------------------------------------------------------------------


def _order(**fields: Any) -> dict[str, Any]:
    return {
        "op": "order", "connection": "paper", "symbol": SYMBOL, "side": "buy", "type": "limit",
        "amount": "0.1", "price": str(FAR_BELOW), **fields,
    }  # fmt: skip


ORDER_PREFIX = b'{"id":%d,"op":"order","connection":"paper","symbol":"ETH/BTC","side":"buy",'

# (what the bot sends, the id the error reply carries): each one a violation
MALFORMED: list[tuple[str, dict[str, Any] | bytes, int | None]] = [
    ("unknown op", {"id": 1, "op": "withdraw", "connection": "paper"}, 1),
    ("unknown field", {"id": 2, **_order(leverage="10")}, 2),
    ("float amount", {"id": 3, **_order(amount=0.1)}, 3),
    ("NaN string", {"id": 4, **_order(amount="NaN")}, 4),
    ("NaN literal", ORDER_PREFIX % 5 + b'"type":"market","amount":NaN}', 5),
    ("Infinity", {"id": 6, **_order(amount="Infinity")}, 6),
    ("negative", {"id": 7, **_order(amount="-1")}, 7),
    ("zero", {"id": 8, **_order(price="0")}, 8),
    ("huge string", {"id": 9, **_order(symbol="E" * 60_000)}, 9),
    ("long number", {"id": 10, **_order(amount="0." + "1" * 60)}, 10),
    ("not a bool", {"id": 11, **_order(reduce_only="yes")}, 11),
    ("missing field", {"id": 12, "op": "cancel", "connection": "paper"}, 12),
    ("non-object JSON", b"[1, 2, 3]", None),
    ("invalid UTF-8", b'{"id": 14, "op": "\xff\xfe"}', None),
    ("not JSON", b"{this is not json", None),
    ("no id", {"op": "ping"}, None),
    ("bool id", {"id": True, "op": "ping"}, None),
]


def _send(raw: Any, what: dict[str, Any] | bytes) -> None:
    if isinstance(what, bytes):
        raw.send_body(what)
    else:
        raw.send(what)


def test_malformed_requests_get_bad_request_until_the_limit_then_the_bot_is_cut_off(
    world: World,
) -> None:
    assert len(MALFORMED) < VIOLATION_LIMIT

    async def scenario() -> None:
        async with world.serving(ALPHA) as [gateway]:
            raw = await world.raw(ALPHA)
            for name, what, ident in MALFORMED:
                _send(raw, what)
                reply = await raw.reply()
                assert reply is not None, name
                assert reply["id"] == ident, name
                assert reply["ok"] is False, name
                assert reply["error"]["code"] == "bad_request", name
            # under the limit, the connection still works
            raw.send({"id": 100, "op": "ping"})
            assert await raw.reply() == {"id": 100, "ok": True}
            left = VIOLATION_LIMIT - len(MALFORMED)
            for n in range(left):
                raw.send({"id": 200 + n, "op": "nope"})
                reply = await raw.reply()
                assert reply is not None
                assert reply["error"]["code"] == "bad_request"
            assert await raw.reply() is None  # the 20th was the last: closed
            await until(lambda: not gateway.connected.is_set())
            await raw.close()

    asyncio.run(scenario())
    [row] = world.audited("gateway.violation")
    assert row.subject == ALPHA.id
    assert details(row)["count"] == VIOLATION_LIMIT
    assert world.venue_orders() == 0
    assert world.audited("order.intent") == []


def test_a_frame_of_the_size_limit_is_answered_and_one_byte_more_closes_at_once(
    world: World,
) -> None:
    async def scenario() -> None:
        async with world.serving(ALPHA) as [gateway]:
            raw = await world.raw(ALPHA)
            head = b'{"id":1,"op":"ping","pad":"'
            body = head + b"x" * (wire.MAX_FRAME - len(head) - 2) + b'"}'
            assert len(body) == wire.MAX_FRAME
            raw.send_body(body)  # the largest frame: read, checked, refused (unknown field)
            reply = await raw.reply()
            assert reply is not None
            assert reply["error"]["code"] == "bad_request"
            raw.writer.write(struct.pack(">I", wire.MAX_FRAME + 1))  # only the header
            assert await raw.reply() is None  # no reply, no waiting for the body: closed
            await until(lambda: not gateway.connected.is_set())
            await raw.close()
            client, _ = await world.connect(ALPHA)  # the gateway is still there
            assert (await client.request("ping"))["ok"] is True
            await client.close()

    asyncio.run(scenario())
    [row] = world.audited("gateway.violation")
    assert "over the" in details(row)["last"]


FLOOD = 100_000


def test_a_flood_of_malformed_frames_is_cut_off_and_another_bot_keeps_trading(
    two_bots: World,
) -> None:
    world = two_bots
    orders = 20

    async def scenario() -> tuple[list[dict[str, Any]], list[Order]]:
        async with world.serving(ALPHA, BETA) as [alpha_gw, _]:
            flooder = await world.raw(ALPHA)
            beta, hello = await world.connect(BETA)
            paper = connection(beta, hello)

            async def flood() -> list[dict[str, Any]]:
                frame = struct.pack(">I", 2) + b"[]"
                flooder.writer.write(frame * FLOOD)  # as fast as the socket takes them
                replies = []
                while (reply := await flooder.reply()) is not None:
                    replies.append(reply)
                return replies

            async def trade() -> list[Order]:
                return [await paper.limit(SYMBOL, "buy", "0.01", FAR_BELOW) for _ in range(orders)]

            flooded, placed = await asyncio.gather(flood(), trade())
            await until(lambda: not alpha_gw.connected.is_set())
            # the gateway is up: the flooding bot may come back, properly
            alpha, _ = await world.connect(ALPHA)
            assert (await alpha.request("ping"))["ok"] is True
            await alpha.close()
            await beta.close()
            await flooder.close()
            return flooded, placed

    flooded, placed = asyncio.run(scenario())
    # the flooder got one error per frame up to the limit, then the connection closed: the
    # other 99,980 frames were never read
    assert len(flooded) == VIOLATION_LIMIT
    assert {r["error"]["code"] for r in flooded} == {"bad_request"}
    [row] = world.audited("gateway.violation")
    assert row.subject == ALPHA.id
    assert details(row)["count"] == VIOLATION_LIMIT
    # and every order of the other bot was answered, approved and sent
    assert len(placed) == orders
    assert all(o.status == "open" for o in placed)
    assert len({o.client_order_id for o in placed}) == orders
    assert world.venue_orders() == orders
    assert set(world.engine.book("beta").orders) == {o.client_order_id for o in placed}


def test_another_bot_s_orders_are_answered_while_a_request_flood_is_still_being_served(
    two_bots: World,
) -> None:
    """Well-formed requests are not violations, so a flood of them is served to the end; the
    gateway yields after every frame, so the other bot's orders do not queue behind it."""
    world = two_bots
    pings, orders = 30_000, 10

    async def scenario() -> tuple[int, list[Order], int]:
        async with world.serving(ALPHA, BETA):
            flooder = await world.raw(ALPHA)
            beta, hello = await world.connect(BETA)
            paper = connection(beta, hello)
            answered = 0

            async def flood() -> None:
                nonlocal answered
                flooder.writer.write(
                    b"".join(wire.encode({"id": n + 1, "op": "ping"}) for n in range(pings))
                )
                while answered < pings and (await flooder.reply()) is not None:
                    answered += 1

            flooding = asyncio.create_task(flood())
            await until(lambda: answered > 0)  # the flood is being served
            placed = [await paper.limit(SYMBOL, "buy", "0.01", FAR_BELOW) for _ in range(orders)]
            answered_when_beta_finished = answered
            await flooding
            await beta.close()
            await flooder.close()
            return answered_when_beta_finished, placed, answered

    during, placed, total = asyncio.run(scenario())
    assert total == pings  # the flood was served to the end, no violation
    assert during < pings  # beta's orders were all answered while it was still going
    assert [o.status for o in placed] == ["open"] * orders
    assert world.venue_orders() == orders
    assert world.audited("gateway.violation") == []


def test_orders_over_the_limits_in_a_tight_loop_are_denied_and_none_reaches_the_venue(
    make_world: WorldFactory,
) -> None:
    allowed = 5
    world = make_world(alpha={**LIMITS, "max_submits_per_minute": allowed})
    tries = 400

    async def scenario() -> list[BaseException | Order]:
        async with world.serving(ALPHA):
            client, hello = await world.connect(ALPHA)
            paper = connection(client, hello)
            for _ in range(allowed):  # the minute's allowance, used up
                await paper.limit(SYMBOL, "buy", "0.01", FAR_BELOW)
            # then, as fast as the bot can: small orders (over the rate) and huge ones (over
            # the order notional), all in flight together
            attempts = [
                paper.limit(SYMBOL, "buy", "0.01" if n % 2 else "50", FAR_BELOW)
                for n in range(tries)
            ]
            results = await asyncio.gather(*attempts, return_exceptions=True)
            assert (await client.request("ping"))["ok"] is True  # denials are not violations
            await client.close()
            return results

    results = asyncio.run(scenario())
    codes = [r.code for r in results if isinstance(r, OrderRejected)]
    assert len(codes) == tries  # every one denied
    assert codes.count("risk.submit_rate") == tries // 2
    assert codes.count("risk.order_notional") == tries // 2
    assert world.venue_orders() == allowed  # only the allowance ever reached the venue
    assert len(world.audited("order.intent")) == allowed
    assert len(world.engine.book("alpha").orders) == allowed
    assert world.audited("gateway.violation") == []
    assert tries > MAX_IN_FLIGHT  # the gateway's in-flight bound was exercised too


# -- one bot, one book -------------------------------------------------------------------------


def test_a_bot_cannot_see_or_cancel_another_bot_s_orders(two_bots: World) -> None:
    world = two_bots

    async def scenario() -> None:
        async with world.serving(ALPHA, BETA):
            alpha_client, alpha_hello = await world.connect(ALPHA)
            beta_client, beta_hello = await world.connect(BETA)
            alpha, beta = connection(alpha_client, alpha_hello), connection(beta_client, beta_hello)
            mine = await alpha.limit(SYMBOL, "buy", "0.1", FAR_BELOW)
            theirs = await beta.limit(SYMBOL, "buy", "0.2", FAR_BELOW)
            # same account, same connection name: each sees only its own
            assert [o.client_order_id for o in await alpha.open_orders()] == [mine.client_order_id]
            assert [o.client_order_id for o in await beta.open_orders(SYMBOL)] == [
                theirs.client_order_id
            ]
            with pytest.raises(GatewayError) as refused:
                await beta.cancel(mine.client_order_id)
            assert refused.value.code == "not_found"
            with pytest.raises(GatewayError) as refused:
                await beta.cancel("0x" + secrets.token_hex(16))
            assert refused.value.code == "not_found"
            # alpha's order is untouched, at the venue and in alpha's book
            at_venue = await world.venue.fetch_order(SYMBOL, client_order_id=mine.client_order_id)
            assert at_venue.status is OrderStatus.OPEN
            assert mine.client_order_id in world.engine.book("alpha").orders
            canceled = await alpha.cancel(mine)  # its owner can
            assert canceled is not None
            assert canceled.status == "canceled"
            assert await alpha.open_orders() == []
            assert len(await beta.open_orders()) == 1
            await alpha_client.close()
            await beta_client.close()

    asyncio.run(scenario())


def test_a_connection_name_the_bot_may_not_use_is_a_bad_request(two_bots: World) -> None:
    world = two_bots

    async def scenario() -> None:
        async with world.serving(ALPHA, BETA):
            client, hello = await world.connect(ALPHA)
            assert [c["name"] for c in hello["connections"]] == ["paper"]
            for name in ("beta-only", "binance-main"):  # another bot's, and nobody's
                other = Connection(client, name, "paper", "***")
                with pytest.raises(OrderRejected) as refused:
                    await other.limit(SYMBOL, "buy", "0.1", FAR_BELOW)
                assert refused.value.code == "bad_request"
                assert "this bot may use: paper" in refused.value.message
                for query in (other.open_orders(), other.positions(), other.balance()):
                    with pytest.raises(GatewayError) as query_refused:
                        await query
                    assert query_refused.value.code == "bad_request"
            assert (await client.request("ping"))["ok"] is True
            await client.close()

    asyncio.run(scenario())
    assert world.venue_orders() == 0
    assert world.audited("order.intent") == []


# -- what comes back ---------------------------------------------------------------------------


def test_a_candle_fills_a_resting_order_and_the_bot_receives_fill_and_order_events(
    world: World,
) -> None:
    price = D("0.098")

    async def scenario() -> tuple[Order, list[dict[str, Any]], list[Position]]:
        async with world.serving(ALPHA):
            client, hello = await world.connect(ALPHA)
            paper = connection(client, hello)
            order = await paper.limit(SYMBOL, "buy", "0.1", price)
            # opens above the limit, trades through it: a maker fill at the limit
            bar = candle(next_ts(1), "0.0995", "0.0999", "0.0975", "0.099")
            await world.desk.on_candle(SYMBOL, "5m", bar)
            events = [await client.events.get() for _ in range(3)]
            positions = await paper.positions()
            await client.close()
            return order, events, positions

    order, events, positions = asyncio.run(scenario())
    assert [e["event"] for e in events] == ["fill", "order", "candle"]
    fill = Fill.from_wire(events[0]["fill"])
    assert (fill.client_order_id, fill.symbol, fill.side) == (order.client_order_id, SYMBOL, "buy")
    assert (fill.amount, fill.price) == (D("0.1"), price)
    assert fill.fee > 0
    done = Order.from_wire(events[1]["order"])
    assert (done.client_order_id, done.status, done.filled) == (
        order.client_order_id, "filled", D("0.1"),
    )  # fmt: skip
    bar = Candle.from_wire(events[2]["candle"])
    assert (bar.symbol, bar.timeframe, bar.ts_ms, bar.low) == (
        SYMBOL, "5m", next_ts(1), D("0.0975"),
    )  # fmt: skip
    assert positions == [Position(SYMBOL, D("0.1"), price)]
    book = world.engine.book("alpha")
    assert book.orders == {}
    assert book.qty(SYMBOL) == D("0.1")
    assert world.ledger_fills(order.client_order_id) == 1


def test_a_restart_reconciles_the_journal_with_the_venue_and_applies_each_fill_once(
    world: World,
) -> None:
    async def before() -> tuple[Order, Order]:
        async with world.serving(ALPHA):
            client, hello = await world.connect(ALPHA)
            paper = connection(client, hello)
            resting = await paper.limit(SYMBOL, "buy", "0.1", FAR_BELOW)
            filling = await paper.limit(SYMBOL, "buy", "0.2", "0.098")
            await client.close()
            return resting, filling

    resting, filling = asyncio.run(before())
    # the platform goes down; meanwhile the venue fills one of the two orders
    bar = candle(next_ts(1), "0.0995", "0.0999", "0.0975", "0.099")
    [while_down] = asyncio.run(world.venue.on_candle(SYMBOL, bar))
    assert while_down.client_order_id == filling.client_order_id

    world.shutdown()
    world.boot({"alpha": LIMITS})  # a new audit log, engine, venue, guard and desk
    book = world.engine.book("alpha")
    assert book.orders == {}  # the new engine knows nothing of either order yet
    assert book.qty(SYMBOL) == 0

    found = asyncio.run(world.guard.reconcile(["alpha"]))
    assert {o.client_order_id for o in found} == {resting.client_order_id, filling.client_order_id}

    def check() -> None:
        book = world.engine.book("alpha")
        assert set(book.orders) == {resting.client_order_id}  # booked again
        assert book.orders[resting.client_order_id].remaining == D("0.1")
        assert book.open_amount(SYMBOL, Side.BUY) == D("0.1")  # and counted by the limits
        assert book.qty(SYMBOL) == D("0.2")  # the fill while down, applied
        assert book.worst(SYMBOL) == D("0.3")
        assert world.ledger_fills(filling.client_order_id) == 1
        assert world.ledger_fills(resting.client_order_id) == 0

    check()
    asyncio.run(world.guard.reconcile(["alpha"]))  # again: nothing doubles
    check()
    asyncio.run(world.guard.on_trades([while_down]))  # the venue reports the fill again
    check()
    found_states = {details(r)["found"] for r in world.audited("order.reconciled")}
    assert found_states == {"open", "filled"}

    async def after() -> None:  # and the bot, back on the new desk, can manage its order
        async with world.serving(ALPHA):
            client, hello = await world.connect(ALPHA)
            paper = connection(client, hello)
            assert [o.client_order_id for o in await paper.open_orders()] == [
                resting.client_order_id
            ]
            assert await paper.positions() == [Position(SYMBOL, D("0.2"), D("0.098"))]
            canceled = await paper.cancel(resting)
            assert canceled is not None
            assert canceled.status == "canceled"
            await client.close()

    asyncio.run(after())
    assert world.engine.book("alpha").orders == {}


def test_after_a_restart_the_engine_s_cash_agrees_with_the_venue_s_balance(
    make_world: WorldFactory,
) -> None:
    world = make_world(btc=D("0.5"), alpha=LIMITS)

    async def before() -> Order:
        async with world.serving(ALPHA):
            client, hello = await world.connect(ALPHA)
            order = await connection(client, hello).limit(SYMBOL, "buy", "4", "0.098")
            await client.close()
            return order

    asyncio.run(before())
    bar = candle(next_ts(1), "0.0995", "0.0999", "0.0975", "0.099")
    [_] = asyncio.run(world.venue.on_candle(SYMBOL, bar))  # 0.392 BTC spent while down
    world.shutdown()
    world.boot({"alpha": LIMITS})  # as bots/runtime.py does: the balance read from the venue
    asyncio.run(world.guard.reconcile(["alpha"]))
    free = asyncio.run(world.venue.fetch_balance()).lines["BTC"].free
    assert free > D("0.1")  # 0.5 - 0.392 - the fee

    async def after() -> Order:
        async with world.serving(ALPHA):
            client, hello = await world.connect(ALPHA)
            # 0.098 BTC: the venue can pay for it; an engine that subtracted the fill twice
            # thinks the account is 0.28 BTC short and denies it (risk.balance)
            order = await connection(client, hello).limit(SYMBOL, "buy", "1", "0.098")
            await client.close()
            return order

    assert asyncio.run(after()).status == "open"
