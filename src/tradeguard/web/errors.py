"""Every error answers in one shape: `{"error": {"code": ..., "message": ...}}`.

`code` is the exception's class name (or `validation`), `message` says what failed and what to
do. Validation errors list each field's location and what is wrong with it, but never the value
sent: FastAPI's default echoes the input, and the input may be a password.

Unexpected exceptions are answered by the security middleware (web.middleware), which wraps
everything: Starlette's own 500 handler sits outside every middleware, so its answer would lack
the security headers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tradeguard.core.errors import (
    AuthError,
    InvalidOrder,
    KeyPermissionRefused,
    Throttled,
    TradeguardError,
    UnknownCredential,
    UnknownUser,
    UnlockThrottled,
    VaultLocked,
    VenueError,
    WrongPassword,
)
from tradeguard.web.deps import address_of
from tradeguard.web.schemas import ErrorOut

__all__ = [
    "error_body",
    "error_response",
    "install_error_handlers",
    "log_refusal",
    "responses",
    "status_of",
]

log = logging.getLogger(__name__)
security_log = logging.getLogger("tradeguard.security")
_REFUSALS = frozenset({401, 403, 429})

_HTTP_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "Throttled",
    500: "InternalError",
}
_DESCRIPTIONS = {
    400: "Refused: the message says why",
    401: "Not authenticated, a second factor is needed, or a token or code is wrong",
    403: "Not allowed for this role, or a cross-site request",
    404: "No such object (or another user's)",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "A field is missing or invalid",
    429: "Too many attempts or requests: wait Retry-After seconds",
    502: "The venue refused or failed",
    503: "A service a security check needs is down",
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


def status_of(exc: TradeguardError) -> int:
    if isinstance(exc, AuthError):
        return exc.status
    if isinstance(exc, WrongPassword):
        return 401
    if isinstance(exc, UnlockThrottled):
        return 429
    if isinstance(exc, VaultLocked):
        return 409
    if isinstance(exc, KeyPermissionRefused | InvalidOrder):
        return 422  # the request is what is wrong, not the venue
    if isinstance(exc, VenueError):
        return 502
    if isinstance(exc, UnknownUser | UnknownCredential):
        return 404
    return 400


class _OncePerWindow:
    """Throttled requests (429) come in floods: one line per address and path a minute says
    the same, and a flood of log lines must not be what exhausts the server."""

    def __init__(self, window_s: float = 60.0, size: int = 10_000) -> None:
        self._window = window_s
        self._size = size
        self._seen: dict[tuple[str, str], float] = {}

    def first(self, key: tuple[str, str]) -> bool:
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last < self._window:
            return False
        if len(self._seen) >= self._size:
            self._seen.clear()
        self._seen[key] = now
        return True


def log_refusal(method: str, path: str, status: int, code: str) -> None:
    """One `tradeguard.security` line for a refused request (ASVS V16.3.2): the path without
    its query, the class of refusal, never the message's detail."""
    security_log.warning("refused %s %s: %d %s", method, path, status, code)


def _worth_a_line(request: Request, status: int) -> bool:
    if status != 429:
        return True
    ctx = request.app.state.ctx
    client = address_of(request, ctx.settings)  # the client's, not a proxy's
    once: _OncePerWindow = request.app.state.throttled_lines
    return once.first((client, request.url.path))


async def _tradeguard_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, TradeguardError):
        raise exc
    status = status_of(exc)
    if status in _REFUSALS and _worth_a_line(request, status):
        log_refusal(request.method, request.url.path, status, type(exc).__name__)
    headers: dict[str, str] = {}
    if isinstance(exc, Throttled | UnlockThrottled):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(status, type(exc).__name__, exc.message, headers)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
    # Location and message only: "input" and "ctx" may hold the rejected value.
    fields = [
        {"loc": _location(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in exc.errors()
    ]
    return error_response(
        422, "validation", "the request is not valid: see `fields`", fields=fields
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI answers a JSON body that is not UTF-8 with a bare 400, and one with a JSON
        # syntax error with a 422: both are an invalid body, answered (and declared) as one.
        fields = [{"loc": "body", "message": "the body is not valid JSON text (UTF-8)"}]
        return error_response(
            422, "validation", "the request is not valid: see `fields`", fields=fields
        )
    code = _HTTP_CODES.get(exc.status_code, f"HTTP{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else code
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.state.throttled_lines = _OncePerWindow()
    app.add_exception_handler(TradeguardError, _tradeguard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route declares, for a complete OpenAPI schema:
    `@router.post(..., responses=responses(401, 429))`."""
    return {s: {"model": ErrorOut, "description": _DESCRIPTIONS.get(s, "Error")} for s in statuses}
