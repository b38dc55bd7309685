"""`BotGateway`: one bot's Unix socket, its authentication and its request loop.

    gateway = BotGateway(identity, desk, path=run_dir / "gateway.sock", token=token,
                         is_bot_process=lambda pid: ..., events=audit_log)
    await gateway.start()
    gateway.deliver({"event": "candle", ...})

The socket is created 0600 inside the bot's runtime dir. A connection is accepted only if the
peer process (SO_PEERCRED) runs as our user and `is_bot_process(pid)` says it belongs to this
bot's sandbox, and its first frame is a `hello` with the bot's token (compared in constant
time). One connection at a time. After that every frame is checked (`messages.parse_request`);
a bad one gets an error reply, and `VIOLATION_LIMIT` of them, a frame over the size limit or a
bot that stops reading its replies close the connection, audited. The loop yields after every
frame and each bot has at most `MAX_IN_FLIGHT` requests being handled, so one bot's flood
cannot starve another bot's orders on the same event loop. Nothing a bot sends can raise out of
this module: unexpected errors become an `internal` error reply and a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tradeguard.bots.sdk import wire
from tradeguard.core.events import DomainEvent, EventName, EventSink
from tradeguard.gateway.desk import BotIdentity, Desk, refusal
from tradeguard.gateway.messages import BadRequest, Ready, parse_request
from tradeguard.secrets.secret import Secret

__all__ = ["MAX_IN_FLIGHT", "VIOLATION_LIMIT", "BotGateway", "peer_credentials"]

log = logging.getLogger("tradeguard.gateway")

VIOLATION_LIMIT = 20  # malformed requests on one connection before it is closed
MAX_IN_FLIGHT = 64  # requests of one bot being handled at once; the next waits
HELLO_TIMEOUT = 5.0
WRITE_BUFFER_LIMIT = 4 * 1024 * 1024  # a bot that stops reading its replies is cut off
_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket, from the kernel."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


class _Session:
    """One authenticated connection."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.violations = 0
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, message: dict[str, Any]) -> bool:
        """Queue one frame; False when the bot has stopped reading (the caller cuts it off)."""
        if self.writer.is_closing():
            return False
        self.writer.write(wire.encode(message))
        return self.writer.transport.get_write_buffer_size() <= WRITE_BUFFER_LIMIT


class BotGateway:
    def __init__(
        self,
        bot: BotIdentity,
        desk: Desk,
        *,
        path: Path,
        events: EventSink,
        token: Secret | None = None,
        is_bot_process: Callable[[int], bool] | None = None,
        simulated: bool = False,
    ) -> None:
        self.bot = bot
        self.desk = desk
        self.path = path
        self._token = token
        self._is_bot_process = is_bot_process
        self._events = events
        self._simulated = simulated
        self._server: asyncio.Server | None = None
        self._session: _Session | None = None
        self.connected = asyncio.Event()
        self.handled = 0  # requests answered, for status and tests
        self.peer_pid: int | None = None  # the bot process connected now
        self.ready_ms = -1  # on a simulated clock: events up to here are handled
        self._ready = asyncio.Condition()

    def expect(self, token: Secret, is_bot_process: Callable[[int], bool]) -> None:
        """The token and process tree of the bot's next start; the old token stops working."""
        if self._token is not None and self._token is not token:
            self._token.wipe()
        self._token = token
        self._is_bot_process = is_bot_process

    async def wait_ready(self, at_ms: int) -> None:
        """Wait until the bot has handled the events up to `at_ms` (simulated clock only), or
        its connection ended: a bot that crashed on a candle never acknowledges it, and the
        replay goes on once it is back."""
        async with self._ready:
            await self._ready.wait_for(lambda: self.ready_ms >= at_ms or self._session is None)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on `path`: created 0600 from the start (umask), never world-connectable."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path=str(self.path), limit=wire.MAX_FRAME + 8
            )
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._session is not None:
            await self._cut(self._session)
        if self._server is not None:
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def deliver(self, event: dict[str, Any]) -> None:
        """Send an event to the bot, if it is connected; events for a bot that is away are
        dropped (it asks for orders and positions when it reconnects)."""
        session = self._session
        if session is not None and not session.send(event):
            self._violation(session, "the bot stopped reading its events")
            # deliver() is called from plain code; the session's task set keeps the cut alive
            cut = asyncio.get_running_loop().create_task(self._cut(session))
            session.tasks.add(cut)
            cut.add_done_callback(session.tasks.discard)

    # -- connection ----------------------------------------------------------------------------

    def _audit(self, name: EventName, **details: str | int) -> None:
        event = DomainEvent(
            name, self.desk.engine.clock.now(), f"bot:{self.bot.name}", self.bot.id, details
        )
        try:
            self._events.emit(event)
        except Exception:
            log.exception("could not audit %s for bot %s", name, self.bot.name)

    def _peer_ok(self, writer: asyncio.StreamWriter) -> str | None:
        sock = writer.get_extra_info("socket")
        pid, uid, _gid = peer_credentials(sock)
        if uid != os.getuid():
            return f"peer runs as uid {uid}"
        if self._is_bot_process is None or not self._is_bot_process(pid):
            return f"peer pid {pid} is not this bot's process"
        self.peer_pid = pid
        return None

    async def _hello(self, reader: asyncio.StreamReader) -> str | None:
        """None if the first frame is a hello with this bot's token; else why not."""
        body = await asyncio.wait_for(wire.read_frame(reader), HELLO_TIMEOUT)
        if body is None:
            return "closed before hello"
        message = wire.decode(body)
        token = message.get("token")
        if message.get("op") != "hello" or not isinstance(token, str):
            return "first frame is not a hello with a token"
        if self._token is None:
            return "no bot start is expected"
        with self._token.reveal_text() as expected:
            if not hmac.compare_digest(token.encode(), expected.encode()):
                return "wrong token"
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            problem = self._peer_ok(writer)
            if problem is None:
                problem = await self._hello(reader)
            if problem is None and self._session is not None:
                problem = "the bot is already connected"
        except (TimeoutError, wire.FrameError, OSError) as error:
            problem = f"hello failed: {type(error).__name__}"
        if problem is not None:
            log.warning("gateway %s refused a connection: %s", self.bot.name, problem)
            self._audit(EventName.GATEWAY_AUTH_FAILED, reason=problem)
            with contextlib.suppress(OSError):
                writer.write(
                    wire.encode(
                        {"id": 0, "ok": False, "error": {"code": "auth", "message": problem}}
                    )
                )
                writer.close()
            return
        session = _Session(writer)
        self._session = session
        self.connected.set()
        session.send({"id": 0, "ok": True, **self.desk.hello(self.bot, simulated=self._simulated)})
        try:
            await self._serve(session, reader)
        finally:
            await self._cut(session)

    async def _cut(self, session: _Session) -> None:
        if self._session is session:
            self._session = None
            self.connected.clear()
            async with self._ready:
                self._ready.notify_all()
        for task in list(session.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        session.writer.close()
        with contextlib.suppress(OSError):
            await session.writer.wait_closed()

    # -- requests ------------------------------------------------------------------------------

    def _violation(self, session: _Session, problem: str) -> None:
        session.violations += 1
        if session.violations == VIOLATION_LIMIT or problem.startswith("the bot stopped"):
            self._audit_cutoff(session, problem)

    def _audit_cutoff(self, session: _Session, problem: str) -> None:
        log.warning("gateway %s: cutting the bot off: %s", self.bot.name, problem)
        self._audit(EventName.GATEWAY_VIOLATION, count=session.violations, last=problem)

    async def _serve(self, session: _Session, reader: asyncio.StreamReader) -> None:
        while session.violations < VIOLATION_LIMIT:
            try:
                body = await wire.read_frame(reader)
            except (wire.FrameError, OSError) as error:
                # The stream cannot be resynchronised after a bad length: cut off at once.
                session.violations += 1
                self._audit_cutoff(session, str(error))
                return
            if body is None:
                return
            try:
                request = parse_request(wire.decode(body))
            except wire.FrameError as error:
                request = BadRequest(None, str(error))
            if isinstance(request, BadRequest):
                self._violation(session, request.message)
                refusal = {"code": "bad_request", "message": request.message}
                session.send({"id": request.id, "ok": False, "error": refusal})
            else:
                await session.slots.acquire()
                task = asyncio.create_task(self._answer(session, request))
                session.tasks.add(task)
                task.add_done_callback(session.tasks.discard)
            # Let every other bot's loop and handler run before reading this bot's next frame.
            await asyncio.sleep(0)

    async def _answer(self, session: _Session, request: Any) -> None:
        try:
            reply = {"id": request.id, "ok": True, **await self.desk.handle(self.bot, request)}
            if isinstance(request, Ready):
                async with self._ready:
                    self.ready_ms = max(self.ready_ms, request.at_ms)
                    self._ready.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            code, message = refusal(error)
            if code == "internal":
                log.exception("gateway %s: request %s failed", self.bot.name, request.id)
            reply = {"id": request.id, "ok": False, "error": {"code": code, "message": message}}
        finally:
            session.slots.release()
        self.handled += 1
        if not session.send(reply):
            self._violation(session, "the bot stopped reading its replies")
            await self._cut(session)
