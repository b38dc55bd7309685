"""The security middleware: one pure ASGI layer around the whole app.

For each HTTP request, in order:

1. **Cross-site check** for unsafe methods (POST, PUT, PATCH, DELETE): 403 when an `Origin`
   header is present and is not `public_url`, or `Sec-Fetch-Site` is present and is neither
   `same-origin` nor `none`. Browsers send these on every cross-site request and a page cannot
   forge them; bearer-token routes do not need it (no ambient credential), the refresh-cookie
   route does, and it costs nothing to apply it everywhere.
2. **Body size limit**: 413 when `Content-Length` says too much, and again while the body
   streams in (a chunked body has no length to check up front).
3. **Security headers** on every response, error pages included (CSP, HSTS over TLS only,
   framing, sniffing, referrer, permissions, COOP, `Cache-Control: no-store` on /api).
4. **Last-resort 500** for an unexpected exception, logged with its traceback (the log filter
   redacts secrets), answered without detail. Starlette's own handler sits outside every
   middleware, so its answer would lack the headers.
5. **Access log**: method, path, status, duration, client address. The query string is logged
   with secret-bearing parameters (the WebSocket `ticket`) replaced by `[REDACTED]`.

It is pure ASGI rather than `BaseHTTPMiddleware`, which costs a task and a stream per request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradeguard.web.errors import error_body, log_refusal
from tradeguard.web.proxies import TrustedProxies

__all__ = ["MAX_BODY", "SECURITY_HEADERS", "SecurityMiddleware", "loggable_query", "origin_of"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("tradeguard.web.access")

MAX_BODY = 64 * 1024
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAME_SITE = frozenset({b"same-origin", b"none"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), clipboard-read=(), display-capture=(), "
    "encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), hid=(), idle-detection=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), picture-in-picture=(), "
    "publickey-credentials-get=(), screen-wake-lock=(), serial=(), usb=(), "
    "xr-spatial-tracking=()"
)
HSTS = "max-age=63072000; includeSubDomains; preload"
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("permissions-policy", PERMISSIONS_POLICY),
    ("cross-origin-opener-policy", "same-origin"),
)

_BASE = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS]
_HSTS = (b"strict-transport-security", HSTS.encode())
_NO_STORE = (b"cache-control", b"no-store")
_OURS = frozenset(k for k, _ in [*_BASE, _HSTS, _NO_STORE])

# Query parameters that carry a secret are logged as this; the ticket is the only secret our
# API takes in a URL, the rest are belt and braces.
REDACTED = "[REDACTED]"
_SECRET_PARAMS = ("ticket", "token", "secret", "password", "key", "code", "signature")


def origin_of(url: str) -> str:
    """An origin in one spelling: lowercase, without the scheme's default port."""
    parts = urlsplit(url.strip().lower())
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return "invalid"
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port is not None and port != default:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}"


def loggable_query(query: bytes) -> str:
    """The query string with every secret-bearing parameter's value replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    shown = [(k, REDACTED if _is_secret(k) else v) for k, v in pairs]
    return urlencode(shown, safe="[]")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_PARAMS)


class _BodyTooLarge(Exception):
    pass


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        public_url: str,
        proxies: TrustedProxies,
        max_body: int = MAX_BODY,
    ) -> None:
        self.app = app
        self.origin = origin_of(public_url).encode()
        self.proxies = proxies
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- HTTP ----------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = _Request(scope, self.proxies)
        headers = [*_BASE, _HSTS] if request.https(self.proxies) else _BASE
        if scope["path"].startswith("/api"):
            headers = [*headers, _NO_STORE]
        state = _Exchange(send, headers)
        try:
            refusal = self._refusal(scope["method"], request)
            if refusal is not None:
                log_refusal(scope["method"], scope["path"], refusal[0], refusal[1])
                await state.reply(*refusal)
            else:
                await self.app(scope, self._limited(receive, request, state), state.send)
        except _BodyTooLarge:
            await state.reply(413, "PayloadTooLarge", self._too_large())
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            await state.reply(500, "InternalError", "internal error; the server log has details")
        finally:
            _log_access(scope, request.client, state.status, started)

    def _refusal(self, method: str, request: _Request) -> tuple[int, str, str] | None:
        if method in UNSAFE_METHODS:
            if request.origin is not None and not self._same_origin(request.origin):
                return 403, "CrossSiteRequest", "cross-site request refused: wrong Origin"
            if request.fetch_site is not None and request.fetch_site not in _SAME_SITE:
                return 403, "CrossSiteRequest", "cross-site request refused (Sec-Fetch-Site)"
        if request.length is not None and request.length > self.max_body:
            return 413, "PayloadTooLarge", self._too_large()
        if request.bad_length:
            return 400, "BadRequest", "the Content-Length header is not a number"
        return None

    def _same_origin(self, origin: bytes) -> bool:
        return origin == self.origin or origin_of(origin.decode("latin-1")).encode() == self.origin

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body // 1024} KiB"

    def _limited(self, receive: Receive, request: _Request, state: _Exchange) -> Receive:
        seen = 0
        limit = self.max_body

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Whatever the app answers to the exception below (FastAPI turns a body
                    # error into a 400), the client gets the 413.
                    state.replace_with(413, "PayloadTooLarge", self._too_large())
                    raise _BodyTooLarge
            return message

        return limited

    # -- WebSocket -----------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = _Request(scope, self.proxies)
        outcome = 403  # a handshake refused before acceptance

        async def watched(message: Message) -> None:
            nonlocal outcome
            if message["type"] == "websocket.accept":
                outcome = 101
            elif message["type"] == "websocket.close" and outcome != 101:
                outcome = 403
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            _log_access(scope, request.client, outcome, started, method="WS")


class _Request:
    """The few request headers the middleware reads, in one pass over the raw list."""

    __slots__ = (
        "bad_length", "client", "fetch_site", "forwarded_proto", "length", "origin", "peer",
        "scheme",
    )  # fmt: skip

    def __init__(self, scope: Scope, proxies: TrustedProxies) -> None:
        self.origin: bytes | None = None
        self.fetch_site: bytes | None = None
        self.length: int | None = None
        self.bad_length = False
        self.forwarded_proto: str | None = None
        self.scheme: str = scope.get("scheme", "http")
        forwarded_for: str | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                self.origin = value
            elif name == b"sec-fetch-site":
                self.fetch_site = value.lower()
            elif name == b"content-length":
                self._length(value)
            elif name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
            elif name == b"x-forwarded-proto":
                self.forwarded_proto = value.decode("latin-1")
        client = scope.get("client")
        self.peer: str = client[0] if client else ""
        self.client = proxies.client(self.peer, forwarded_for) if proxies else self.peer

    def _length(self, value: bytes) -> None:
        if value.isdigit():
            self.length = int(value)
        else:
            self.bad_length = True

    def https(self, proxies: TrustedProxies) -> bool:
        return proxies.https(self.scheme, self.peer, self.forwarded_proto)


class _Exchange:
    """The response side: adds the headers, remembers the status, and can answer in the app's
    place (a refusal, a 413 or a 500) as long as nothing has been sent yet."""

    __slots__ = ("_send", "headers", "replacement", "started", "status")

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        self._send = send
        self.headers = headers
        self.started = False
        self.status = 500
        self.replacement: tuple[int, str, str] | None = None

    async def send(self, message: Message) -> None:
        if self.replacement is not None:
            if not self.started and message["type"] == "http.response.start":
                await self.reply(*self.replacement)
            return  # the app's own answer is dropped
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            message["headers"] = _merged(message.get("headers", ()), self.headers)
        await self._send(message)

    def replace_with(self, status: int, code: str, message: str) -> None:
        self.replacement = (status, code, message)

    async def reply(self, status: int, code: str, message: str) -> None:
        if self.started:
            return  # too late to answer: the client sees a cut-off response
        self.started = True
        self.status = status
        body = _json(error_body(code, message))
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *self.headers,
        ]
        if status == 413:
            raw.append((b"connection", b"close"))  # the rest of the body is not read
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        await self._send({"type": "http.response.body", "body": body})


def _merged(
    app_headers: Iterable[tuple[bytes, bytes]], ours: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in app_headers if k.lower() not in _OURS]
    kept.extend(ours)
    return kept


def _json(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _log_access(
    scope: Scope, client: str, status: int, started: float, *, method: str | None = None
) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    query = loggable_query(scope.get("query_string", b""))
    target = f"{scope['path']}?{query}" if query else scope["path"]
    elapsed_ms = (time.perf_counter() - started) * 1000
    access_log.info(
        "%s %s %d %.1fms %s", method or scope["method"], target, status, elapsed_ms, client
    )
