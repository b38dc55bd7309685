"""Login, refresh, logout, password reset, and first-admin setup.

The refresh token lives in a `__Host-` cookie: HttpOnly (no script reads it), Secure, SameSite
Strict, Path=/ and no Domain (so no sibling subdomain can set or shadow it; docs/security.md,
"Session cookies"). The refresh route also wants the session's CSRF token in `X-CSRF-Token`,
which a cross-site page cannot read or forge. Access tokens travel in the response body and the
`Authorization` header, never in a cookie.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse

from tradeguard.auth.service import LoginResult
from tradeguard.core.errors import TokenInvalid
from tradeguard.web.deps import ClientIp, Ctx, Enrolling
from tradeguard.web.errors import error_response, log_refusal, responses
from tradeguard.web.schemas import (
    AcceptedOut,
    LoginBody,
    LogoutAllOut,
    OkOut,
    ResetConfirmBody,
    ResetRequestBody,
    SetupBody,
    TokenOut,
    UserOut,
    password_of,
)

__all__ = ["REFRESH_COOKIE", "router", "setup_router"]

router = APIRouter(prefix="/api/auth", tags=["auth"])
setup_router = APIRouter(prefix="/api", tags=["auth"])

REFRESH_COOKIE = "__Host-tg_refresh"
RESET_ACCEPTED = (
    "if an account has this address, a reset link is on its way; it works once, within 15 minutes"
)


def _set_refresh_cookie(response: Response, result: LoginResult, now: datetime) -> None:
    # The cookie lives as long as the session can: its absolute timeout.
    max_age = max(0, int((result.session.expires_at - now).total_seconds()))
    with result.refresh_token.reveal_text() as value:
        response.set_cookie(
            REFRESH_COOKIE,
            value,
            max_age=max_age,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )


def _clear_refresh_cookie(response: Response) -> None:
    response.delete_cookie(REFRESH_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def issue_tokens(response: Response, result: LoginResult, now: datetime) -> TokenOut:
    """A new session's tokens: the refresh token in its cookie, the rest in the body."""
    _set_refresh_cookie(response, result, now)
    return TokenOut(
        access_token=result.access_token,
        expires_in=max(0, int((result.access_expires_at - now).total_seconds())),
        csrf_token=result.csrf_token,
        user=UserOut.of(result.account),
    )


@router.post("/login", response_model=TokenOut, responses=responses(401, 422, 429, 503))
def login(
    body: LoginBody, request: Request, response: Response, ctx: Ctx, ip: ClientIp
) -> TokenOut:
    """Password, plus `code` (TOTP or backup code) when the account has a second factor: a
    401 `SecondFactorRequired` says so. Sets the refresh cookie."""
    password = password_of(body.password)
    try:
        result = ctx.accounts.login(
            body.login,
            password,
            code=body.code,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
        )
    finally:
        password.wipe()
    now = ctx.clock.now()
    return issue_tokens(response, result, now)


@router.post("/refresh", response_model=TokenOut, responses=responses(401, 403, 422, 429, 503))
def refresh(
    request: Request,
    response: Response,
    ctx: Ctx,
    csrf: Annotated[str | None, Header(alias="X-CSRF-Token", max_length=128)] = None,
) -> TokenOut | JSONResponse:
    """A new access token and a rotated refresh cookie, for the refresh cookie and the
    session's `X-CSRF-Token`. A refresh token used twice ends its session."""
    presented = request.cookies.get(REFRESH_COOKIE)
    try:
        if not presented:
            raise TokenInvalid("no refresh cookie; log in again")
        result = ctx.accounts.refresh(presented, csrf)
    except TokenInvalid as e:
        # A dead cookie is dropped, so the browser stops sending it.
        log_refusal(request.method, request.url.path, 401, type(e).__name__)
        failed = error_response(401, type(e).__name__, e.message, {"WWW-Authenticate": "Bearer"})
        _clear_refresh_cookie(failed)
        return failed
    now = ctx.clock.now()
    return issue_tokens(response, result, now)


@router.post("/logout", response_model=OkOut, responses=responses(401, 429))
def logout(principal: Enrolling, response: Response, ctx: Ctx) -> OkOut:
    """End this session: its refresh token and access tokens stop working now."""
    ctx.accounts.logout(principal)
    _clear_refresh_cookie(response)
    return OkOut()


@router.post("/logout-all", response_model=LogoutAllOut, responses=responses(401, 429))
def logout_all(principal: Enrolling, response: Response, ctx: Ctx) -> LogoutAllOut:
    """End every session of this account, this one included."""
    ended = ctx.accounts.logout_all(principal)
    _clear_refresh_cookie(response)
    return LogoutAllOut(sessions_ended=ended)


@router.post(
    "/reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=responses(422, 429),
)
def reset_request(body: ResetRequestBody, ctx: Ctx, ip: ClientIp) -> AcceptedOut:
    """Mail a reset link. The answer (and its timing) is the same whether or not an account
    has the address."""
    ctx.accounts.request_reset(body.email, ip)
    return AcceptedOut(message=RESET_ACCEPTED)


@router.post("/reset/confirm", response_model=OkOut, responses=responses(400, 401, 422, 429, 503))
def reset_confirm(body: ResetConfirmBody, ctx: Ctx, ip: ClientIp) -> OkOut:
    """A new password with the mailed token, plus `code` when the account has a second
    factor (a mailbox alone does not open the account). Every session ends."""
    password = password_of(body.password)
    try:
        ctx.accounts.confirm_reset(body.token, password, body.code, ip)
    finally:
        password.wipe()
    return OkOut()


@setup_router.post(
    "/setup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=responses(400, 401, 409, 422, 429, 503),
)
def setup(body: SetupBody, ctx: Ctx, ip: ClientIp) -> UserOut:
    """Create the first admin with the one-time token `tradeguard serve` printed. The admin
    then logs in and turns on two-factor authentication (POST /api/me/2fa)."""
    password = password_of(body.password)
    try:
        account = ctx.accounts.setup_admin(body.token, body.name, body.email, password, ip)
    finally:
        password.wipe()
    return UserOut.of(account)
