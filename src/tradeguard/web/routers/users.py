"""Accounts, for admins: list, create, change a role, disable or enable.

A role change or a disable ends every session of that user at once (the account service does
it); an admin cannot demote or disable themselves, so the last admin cannot lock everyone out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from tradeguard.web.deps import Admin, Ctx
from tradeguard.web.errors import responses
from tradeguard.web.schemas import (
    LogoutAllOut,
    NewUserBody,
    UserOut,
    UserPatchBody,
    password_of,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/users", tags=["users"])

UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("", response_model=list[UserOut], responses=responses(401, 403, 429))
def list_users(_admin: Admin, ctx: Ctx) -> list[UserOut]:
    return [UserOut.of(a) for a in ctx.accounts.accounts()]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=responses(400, 401, 403, 409, 422, 429, 503),
)
def create_user(body: NewUserBody, admin: Admin, ctx: Ctx) -> UserOut:
    """A new account in service vault mode. A new admin must turn on a second factor before
    using admin rights."""
    password = password_of(body.password)
    try:
        account = ctx.accounts.create_account(
            body.name, body.email, password, body.role, actor=admin.actor
        )
    finally:
        password.wipe()
    return UserOut.of(account)


@router.patch(
    "/{user_id}", response_model=UserOut, responses=responses(401, 403, 404, 409, 422, 429)
)
def update_user(user_id: UserId, body: UserPatchBody, admin: Admin, ctx: Ctx) -> UserOut:
    """Change the role and/or disable (or enable) an account."""
    account = ctx.accounts.account(user_id)
    if body.role is not None and body.role is not account.role:
        account = ctx.accounts.set_role(admin, user_id, body.role)
    if body.disabled is not None and body.disabled != account.disabled:
        account = ctx.accounts.set_disabled(admin, user_id, body.disabled)
    return UserOut.of(account)


@router.post(
    "/{user_id}/logout-all",
    response_model=LogoutAllOut,
    responses=responses(401, 403, 404, 422, 429),
)
def end_sessions(user_id: UserId, admin: Admin, ctx: Ctx) -> LogoutAllOut:
    """End every session of a user (a lost laptop, a departure); their password stays."""
    return LogoutAllOut(sessions_ended=ctx.accounts.end_sessions_of(admin, user_id))
