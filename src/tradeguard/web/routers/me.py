"""The caller's own account: who they are, their sessions, second factor, password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from tradeguard.auth.service import StepUp
from tradeguard.secrets import Token
from tradeguard.web.deps import ClientIp, Ctx, CurrentUser, Enrolling
from tradeguard.web.errors import responses
from tradeguard.web.routers.auth import issue_tokens
from tradeguard.web.schemas import (
    BackupCodesOut,
    CodeBody,
    EmailChangeBody,
    EnrolledOut,
    EnrolmentOut,
    OkOut,
    PasswordChangeBody,
    SessionOut,
    StepUpFields,
    TokenOut,
    UserOut,
    password_of,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/me", tags=["me"])

SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


def _shown_once(codes: list[Token]) -> BackupCodesOut:
    """The codes as text for this one response; the Token values are wiped."""
    shown = []
    for code in codes:
        with code.reveal_text() as text:
            shown.append(text)
        code.wipe()
    return BackupCodesOut(backup_codes=shown)


@router.get("", response_model=UserOut, responses=responses(401, 429))
async def get_me(principal: Enrolling) -> UserOut:
    return UserOut.of(principal.account)


@router.get("/sessions", response_model=list[SessionOut], responses=responses(401, 429))
def get_sessions(principal: Enrolling, ctx: Ctx) -> list[SessionOut]:
    """The live sessions of this account, newest first; `current` marks this one."""
    sessions = ctx.accounts.live_sessions(principal)
    return [SessionOut.of(s, principal.session.id) for s in sessions]


@router.post(
    "/sessions/{session_id}/end",
    response_model=OkOut,
    responses=responses(401, 404, 422, 429, 503),
)
def end_session(
    session_id: SessionId, body: StepUpFields, principal: CurrentUser, ctx: Ctx, ip: ClientIp
) -> OkOut:
    """End one of this account's sessions (another device), with a fresh proof (`code`, or
    `password` without a second factor)."""
    with body.proof() as proof:
        ctx.accounts.end_session(principal, session_id, proof, ip)
    return OkOut()


@router.post("/email", response_model=UserOut, responses=responses(400, 401, 409, 422, 429, 503))
def change_email(body: EmailChangeBody, principal: CurrentUser, ctx: Ctx, ip: ClientIp) -> UserOut:
    """A new address for password resets, with a fresh proof; reset links already sent stop
    working."""
    with body.proof() as proof:
        account = ctx.accounts.change_email(principal, body.email, proof, ip)
    return UserOut.of(account)


@router.post("/2fa", response_model=EnrolmentOut, responses=responses(401, 409, 422, 429, 503))
def begin_2fa(body: StepUpFields, principal: Enrolling, ctx: Ctx, ip: ClientIp) -> EnrolmentOut:
    """Start TOTP enrolment, with the current `password`: scan the QR code (or enter the
    otpauth URI) in an authenticator app, then confirm with one code. Starting again replaces
    a pending secret."""
    with body.proof() as proof:
        enrolment = ctx.accounts.begin_totp(principal, proof, ip)
    return EnrolmentOut(otpauth_uri=enrolment.uri, qr_svg=enrolment.qr_svg)


@router.post("/2fa/confirm", response_model=EnrolledOut, responses=responses(401, 409, 422, 429))
def confirm_2fa(body: CodeBody, principal: Enrolling, ctx: Ctx, response: Response) -> EnrolledOut:
    """Turn TOTP on with one valid code. The answer holds 10 backup codes, shown this once
    (each works once in place of a code), and new tokens: a second factor is a privilege
    change, so every session ends, this one included, and this caller goes on in a new one."""
    codes, renewed = ctx.accounts.confirm_totp(principal, body.code)
    tokens = issue_tokens(response, renewed, ctx.clock.now())
    return EnrolledOut(**tokens.model_dump(), backup_codes=_shown_once(codes).backup_codes)


@router.post("/2fa/disable", response_model=OkOut, responses=responses(401, 403, 422, 429, 503))
def disable_2fa(body: StepUpFields, principal: CurrentUser, ctx: Ctx, ip: ClientIp) -> OkOut:
    """Turn TOTP off (a fresh `code` needed). Admins cannot: they must keep it."""
    with body.proof() as proof:
        ctx.accounts.disable_totp(principal, proof, ip)
    return OkOut()


@router.post(
    "/backup-codes", response_model=BackupCodesOut, responses=responses(401, 409, 422, 429, 503)
)
def regenerate_backup_codes(
    body: StepUpFields, principal: CurrentUser, ctx: Ctx, ip: ClientIp
) -> BackupCodesOut:
    """Replace every backup code with 10 new ones (a fresh `code` needed), shown once."""
    with body.proof() as proof:
        codes = ctx.accounts.regenerate_backup_codes(principal, proof, ip)
    return _shown_once(codes)


@router.post("/password", response_model=TokenOut, responses=responses(400, 401, 422, 429, 503))
def change_password(
    body: PasswordChangeBody, principal: CurrentUser, ctx: Ctx, ip: ClientIp, response: Response
) -> TokenOut:
    """The current password, the new one, and `code` when the account has a second factor.
    Every session ends, this one included; the answer holds this caller's new tokens."""
    current = password_of(body.current_password)
    new = password_of(body.new_password)
    try:
        renewed = ctx.accounts.change_password(principal, current, new, StepUp(code=body.code), ip)
    finally:
        current.wipe()
        new.wipe()
    return issue_tokens(response, renewed, ctx.clock.now())
