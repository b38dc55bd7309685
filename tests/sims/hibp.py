"""A Have I Been Pwned "Pwned Passwords" range API on loopback.

It answers `GET /range/{5 hex}` as the real service does: one `SUFFIX:COUNT` line per known
password hash under that prefix, CRLF-separated, and, when the request carries
`Add-Padding: true`, extra random suffixes with count 0 so every answer looks alike in size.

    sim = HibpSim({"password1234": 31_000})
    with hibp_sim(sim) as url:
        BreachedPasswords(url, fail_closed=True).count(Password("password1234"))  # 31000

`requests` records the path, query and headers of every request, so a test can show what left
the process. Faults: `status` (answer e.g. 500), `hang` (hold the reply until the sim stops,
`reset()` is called or `hang_seconds` pass: for timeouts), `body` (answer this text instead: for
malformed replies). `reset()` lets one served sim be shared by many tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from tests.sims.server import serve

__all__ = ["HibpSim", "SeenRequest", "hibp_sim", "sha1_hex"]

_PREFIX = re.compile(r"[0-9A-Fa-f]{5}")


def sha1_hex(text: str) -> str:
    """The uppercase SHA-1 hex digest of the UTF-8 of `text`, as HIBP indexes passwords."""
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]

    def text(self) -> str:
        """Everything the request carried, as one string to search."""
        lines = [f"{self.method} {self.path}?{self.query}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return "\n".join(lines)


class HibpSim:
    """The range API over a fixed set of breached passwords (password -> times seen)."""

    def __init__(self, breached: Mapping[str, int] | None = None, *, padding: int = 40) -> None:
        self.padding = padding
        self.hang_seconds = 30.0
        self._generation = 0
        self._released = threading.Event()
        self.reset(breached)
        self.app = Starlette(routes=[Route("/range/{prefix}", self._range)])

    def reset(self, breached: Mapping[str, int] | None = None) -> None:
        """Forget requests, faults and passwords (then know `breached`); end held replies."""
        self._generation += 1
        self.requests: list[SeenRequest] = []
        self.status = 200
        self.hang = False
        self.body: str | None = None
        self._by_prefix: dict[str, dict[str, int]] = {}
        for password, count in (breached or {}).items():
            self.add(password, count)

    def add(self, password: str, count: int) -> None:
        digest = sha1_hex(password)
        self._by_prefix.setdefault(digest[:5], {})[digest[5:]] = count

    def release(self) -> None:
        """End every held (hanging) reply now."""
        self._released.set()

    async def _range(self, request: Request) -> Response:
        prefix = request.path_params["prefix"]
        self.requests.append(
            SeenRequest(request.method, request.url.path, request.url.query, dict(request.headers))
        )
        if self.hang:
            await self._hold()
        if self.status != 200:
            return PlainTextResponse("simulated failure", status_code=self.status)
        if self.body is not None:
            return PlainTextResponse(self.body)
        if not _PREFIX.fullmatch(prefix):
            return PlainTextResponse("The hash prefix was not in a valid format", status_code=400)
        padded = request.headers.get("add-padding", "").lower() == "true"
        return PlainTextResponse("\r\n".join(self._lines(prefix.upper(), padded)))

    def _lines(self, prefix: str, padded: bool) -> list[str]:
        known = self._by_prefix.get(prefix, {})
        lines = [f"{suffix}:{count}" for suffix, count in known.items()]
        if padded:
            lines += [f"{secrets.token_hex(18)[:35].upper()}:0" for _ in range(self.padding)]
        return sorted(lines)

    async def _hold(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hang_seconds
        generation = self._generation
        while (
            loop.time() < deadline
            and generation == self._generation
            and not self._released.is_set()
        ):
            await asyncio.sleep(0.02)


@contextmanager
def hibp_sim(sim: HibpSim | None = None) -> Iterator[str]:
    """Serve `sim` (an empty one when None) on loopback; yields the base URL."""
    sim = sim if sim is not None else HibpSim()
    sim._released.clear()
    with serve(sim.app) as url:
        try:
            yield url
        finally:
            sim.release()
