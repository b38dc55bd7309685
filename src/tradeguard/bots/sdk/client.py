"""The bot's end of the gateway socket: one connection, requests matched to replies by id,
events queued for the bot in the order they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any, Protocol

from . import wire
from .types import GatewayError, OrderRejected

__all__ = ["GatewayClient", "Requester"]

_CLOSED = {"event": "closed"}


class Requester(Protocol):
    """What a `Connection` sends its requests through: the gateway socket, or in a backtest
    the same desk called in-process."""

    async def request(self, op: str, **args: Any) -> dict[str, Any]: ...


class GatewayClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, path: str, token: str) -> tuple[GatewayClient, dict[str, Any]]:
        """Connect and authenticate; the gateway's hello reply (who the bot is)."""
        reader, writer = await asyncio.open_unix_connection(path, limit=wire.MAX_FRAME + 8)
        client = cls(reader, writer)
        writer.write(wire.encode({"id": 0, "op": "hello", "token": token, "protocol": 1}))
        body = await wire.read_frame(reader)
        if body is None:
            raise GatewayError("auth", "the gateway closed the connection at hello")
        hello = wire.decode(body)
        if not hello.get("ok"):
            error = hello.get("error") or {}
            raise GatewayError(str(error.get("code", "auth")), str(error.get("message", "")))
        client._task = asyncio.create_task(client._read())
        return client, hello

    async def _read(self) -> None:
        try:
            while (body := await wire.read_frame(self._reader)) is not None:
                message = wire.decode(body)
                future = self._pending.pop(message.get("id", -1), None)
                if future is not None:
                    if not future.done():
                        future.set_result(message)
                elif "event" in message:
                    self.events.put_nowait(message)
        except (OSError, wire.FrameError):
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(GatewayError("closed", "the gateway connection closed"))
            self._pending.clear()
            self.events.put_nowait(_CLOSED)

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; `GatewayError` (or `OrderRejected` for an
        order) when the gateway refuses it."""
        if self._task is None or self._task.done():
            raise GatewayError("closed", "the gateway connection is closed")
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        self._writer.write(wire.encode({"id": ident, "op": op, **args}))
        reply = await future
        if not reply.get("ok"):
            error = reply.get("error") or {}
            kind = OrderRejected if op == "order" else GatewayError
            raise kind(str(error.get("code", "error")), str(error.get("message", "")))
        return reply

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        if self._task is not None:
            await self._task
