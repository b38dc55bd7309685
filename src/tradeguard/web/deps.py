"""FastAPI dependencies: the context, the client's address, the caller and their role.

An access token is accepted from the `Authorization: Bearer` header only: never from a query
parameter (it would land in logs and browser history) nor a cookie (a cookie rides along on
cross-site requests; a header does not, so bearer-authenticated routes need no CSRF token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from tradeguard.auth.accounts import Role
from tradeguard.auth.service import Principal
from tradeguard.config import Settings
from tradeguard.core.errors import Forbidden, TokenInvalid
from tradeguard.web.context import AppContext
from tradeguard.web.proxies import trusted_proxies

__all__ = [
    "Admin",
    "ClientIp",
    "Ctx",
    "CurrentUser",
    "Enrolling",
    "Trader",
    "address_of",
    "client_ip",
    "current_principal",
    "get_context",
    "require_role",
]

# auto_error=False: a missing header is our own 401 with our error body, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/auth/login")


# The dependencies on every request's path are `async` and do no blocking work inline: FastAPI
# runs a plain `def` dependency on a worker thread, a hop that costs more than the check itself.
# Work that may block (a cache miss reads the database; Redis-backed budgets) goes to a thread.


async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]


def address_of(connection: HTTPConnection, settings: Settings) -> str:
    """The peer address; `X-Forwarded-For` only from a trusted proxy (web.proxies)."""
    peer = connection.client.host if connection.client else ""
    proxies = trusted_proxies(settings.trusted_proxies)
    return proxies.client(peer, connection.headers.get("x-forwarded-for"))


async def client_ip(request: Request) -> str:
    ctx: AppContext = request.app.state.ctx
    return address_of(request, ctx.settings)


ClientIp = Annotated[str, Depends(client_ip)]


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise TokenInvalid("send the access token from login as `Authorization: Bearer <token>`")
    ctx: AppContext = request.app.state.ctx  # not through `Ctx`: one dependency fewer a request
    accounts = ctx.accounts
    token = credentials.credentials
    principal = accounts.remembered(token)
    if principal is None:
        principal = await run_in_threadpool(accounts.authenticate, token)
    if accounts.rates.local:
        accounts.rates.user_request(principal.account.id)
    else:
        await run_in_threadpool(accounts.rates.user_request, principal.account.id)
    return principal


# Any logged-in caller, with or without a second factor: for logging out and turning one on.
Enrolling = Annotated[Principal, Depends(current_principal)]


async def enrolled_principal(request: Request, principal: Enrolling) -> Principal:
    """The caller, once the installation's second-factor rule is met
    (`TRADEGUARD_REQUIRE_2FA=everyone`: every account must have one before anything else)."""
    ctx: AppContext = request.app.state.ctx
    if ctx.settings.require_2fa == "everyone" and not principal.account.totp_enabled:
        raise Forbidden(
            "this installation requires two-factor authentication: turn it on first "
            "(POST /api/me/2fa, then /api/me/2fa/confirm)"
        )
    return principal


CurrentUser = Annotated[Principal, Depends(enrolled_principal)]


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets in the given roles only (403 for the others). An admin also
    needs a second factor turned on: admin power behind a password alone is refused."""
    allowed = frozenset(roles)
    names = ", ".join(sorted(r.value for r in allowed))

    async def dependency(principal: CurrentUser) -> Principal:
        account = principal.account
        if account.role not in allowed:
            raise Forbidden(f"this needs the role {names}; yours is {account.role.value}")
        if account.role is Role.ADMIN and not account.totp_enabled:
            raise Forbidden(
                "admins must turn on two-factor authentication first (POST /api/me/2fa)"
            )
        return principal

    return dependency


_may_change = require_role(Role.ADMIN, Role.TRADER)


async def trader(
    request: Request, principal: Annotated[Principal, Depends(_may_change)]
) -> Principal:
    """An admin or trader about to change something; the address it comes from is recorded
    as one this user trades from (new-address tracking, for anomaly rules)."""
    ctx: AppContext = request.app.state.ctx
    ip = address_of(request, ctx.settings)
    await run_in_threadpool(ctx.accounts.record_trading_address, principal, ip)
    return principal


Trader = Annotated[Principal, Depends(trader)]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
