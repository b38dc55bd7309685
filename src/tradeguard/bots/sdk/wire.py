"""The bot <-> gateway wire format: length-prefixed JSON frames over the bot's Unix socket.

A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON holding one object.
Numbers that are money or quantities travel as decimal strings, never as JSON floats.

Requests (bot -> gateway) carry an integer `id` and an `op`; each gets exactly one reply with
the same `id`: `{"id": 7, "ok": true, ...}` or `{"id": 7, "ok": false, "error": {"code": ...,
"message": ...}}`. Events (gateway -> bot) carry `event` and no `id`.

This module is standard library only: it is copied into each bot's virtualenv with the rest of
the SDK, and the gateway reads and writes frames with the same code.
"""

from __future__ import annotations

import asyncio
import json
import struct
from decimal import Decimal
from typing import Any

__all__ = ["HEADER_SIZE", "MAX_FRAME", "PROTOCOL", "FrameError", "decode", "encode", "read_frame"]

PROTOCOL = 1
MAX_FRAME = 64 * 1024  # a bigger frame is a violation: no message of ours comes near it
_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size  # the length prefix before each JSON body


class FrameError(Exception):
    """A frame that is not one JSON object of at most `MAX_FRAME` bytes."""


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot go on the wire")


def encode(message: dict[str, Any]) -> bytes:
    """One frame, header included."""
    body = json.dumps(message, separators=(",", ":"), default=_default).encode()
    if len(body) > MAX_FRAME:
        raise FrameError(f"message of {len(body)} bytes is over the {MAX_FRAME}-byte frame limit")
    return _HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    """A frame's body as a JSON object; `FrameError` if it is not one."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FrameError(f"frame is not JSON: {type(error).__name__}") from None
    if not isinstance(message, dict):
        raise FrameError(f"frame holds a JSON {type(message).__name__}, not an object")
    return message


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's body; None at a clean end of stream. `FrameError` for a length over
    the limit (the stream cannot be resynchronised after that) or a stream cut mid-frame."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise FrameError("stream ended inside a frame header") from None
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes is over the {MAX_FRAME}-byte limit")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise FrameError("stream ended inside a frame") from None
