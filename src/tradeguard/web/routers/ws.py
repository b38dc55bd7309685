"""The live stream: `POST /api/ws-ticket`, then `WebSocket /api/ws?ticket=...`.

A browser cannot put an `Authorization` header on a WebSocket, and an access token in a URL
would land in logs and history. So the client trades its access token for a ticket: 256 bits,
one use, 30 seconds, bound to the client's address. The socket checks the Origin (a page on
another site cannot open it with the user's ticket) and redeems the ticket; then it sends the
user's bot status, orders, fills and alerts (web.stream) once a second, until the client goes
away or the account is disabled. The access log shows the ticket as `[REDACTED]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from tradeguard.auth.service import TICKET_TTL_S
from tradeguard.core.errors import TradeguardError
from tradeguard.web.context import AppContext
from tradeguard.web.deps import ClientIp, Ctx, CurrentUser, address_of
from tradeguard.web.errors import responses
from tradeguard.web.middleware import origin_of
from tradeguard.web.schemas import WsTicketOut
from tradeguard.web.stream import UserStream

__all__ = ["POLL_S", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["ws"])

POLL_S = 1.0
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


@router.post("/ws-ticket", response_model=WsTicketOut, responses=responses(401, 429, 503))
def ws_ticket(principal: CurrentUser, ctx: Ctx, ip: ClientIp) -> WsTicketOut:
    """A one-time ticket for `/api/ws?ticket=...`, from this address, within 30 seconds."""
    ticket = ctx.accounts.ws_ticket(principal, ip)
    with ticket.reveal_text() as text:
        return WsTicketOut(ticket=text, expires_in=TICKET_TTL_S)


@router.websocket("/ws")
async def stream(websocket: WebSocket) -> None:
    ctx: AppContext = websocket.app.state.ctx
    # Accept first, then close with a reason: the client learns why, and nothing was sent.
    await websocket.accept()
    origin = websocket.headers.get("origin")
    if origin is None or origin_of(origin) != origin_of(ctx.settings.public_url):
        await websocket.close(POLICY_VIOLATION, "wrong or missing Origin")
        return
    ticket = websocket.query_params.get("ticket", "")
    ip = address_of(websocket, ctx.settings)
    try:
        account, session_id = await run_in_threadpool(ctx.accounts.redeem_ws_ticket, ticket, ip)
    except TradeguardError:
        await websocket.close(POLICY_VIOLATION, "invalid, expired or used ticket")
        return
    user_stream = UserStream(ctx, account, session_id)
    pump = asyncio.create_task(_pump(websocket, user_stream))
    listen = asyncio.create_task(_until_disconnect(websocket))
    try:
        await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, listen):
            task.cancel()
        await asyncio.gather(pump, listen, return_exceptions=True)
    failure = None if pump.cancelled() else pump.exception()
    if failure is not None and not isinstance(failure, WebSocketDisconnect | OSError):
        log.error("the WebSocket stream of user %s failed", account.id, exc_info=failure)
        await _close_quietly(websocket, INTERNAL_ERROR)


async def _pump(websocket: WebSocket, user_stream: UserStream) -> None:
    messages: list[dict[str, object]] | None = await run_in_threadpool(user_stream.open)
    while messages is not None:
        for message in messages:
            await websocket.send_json(message)
        await asyncio.sleep(POLL_S)
        messages = await run_in_threadpool(user_stream.poll)
    await websocket.close(POLICY_VIOLATION, "the account is disabled")


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


async def _close_quietly(websocket: WebSocket, code: int) -> None:
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):  # already closed
        await websocket.close(code)
