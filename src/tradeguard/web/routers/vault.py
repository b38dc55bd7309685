"""The caller's own vault: whether it is open, and opening or locking it (password mode).

A password-mode vault opens with the vault password (not the login password: a stolen session
alone cannot open it) and stays open in this server's memory until its idle or absolute timeout
(TRADEGUARD_VAULT_*_TIMEOUT) or a lock. Wrong passwords are throttled per user before any
Argon2id work, as on the command line.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, SecretStr
from starlette.concurrency import run_in_threadpool

from tradeguard.core.errors import Conflict
from tradeguard.secrets import Password
from tradeguard.web.deps import Ctx, CurrentUser, Trader
from tradeguard.web.errors import responses
from tradeguard.web.schemas import MAX_PASSWORD, Body

__all__ = ["router"]

router = APIRouter(prefix="/api/vault", tags=["vault"])


class VaultOut(BaseModel):
    mode: Literal["service", "password"] = Field(
        description="service: the master key opens it (bots run unattended); password: only "
        "the vault password does"
    )
    unlocked: bool = Field(description="Always true in service mode")


class UnlockBody(Body):
    password: SecretStr = Field(min_length=1, max_length=MAX_PASSWORD)


def _status(ctx: Ctx, principal: CurrentUser) -> VaultOut:
    account = principal.account
    if account.vault_mode == "service":
        return VaultOut(mode="service", unlocked=True)
    ctx.vault.sessions.sweep()  # wipe keys whose time is up, not only when next asked for
    return VaultOut(mode="password", unlocked=ctx.vault.sessions.is_open(account.id))


@router.get("", response_model=VaultOut, responses=responses(401, 429))
def get_vault(principal: CurrentUser, ctx: Ctx) -> VaultOut:
    return _status(ctx, principal)


@router.post("/unlock", response_model=VaultOut, responses=responses(401, 403, 409, 422, 429))
async def unlock(body: UnlockBody, principal: Trader, ctx: Ctx) -> VaultOut:
    """Open a password-mode vault. A service-mode vault is always open (409)."""
    if principal.account.vault_mode == "service":
        raise Conflict("this vault is in service mode: the master key opens it, always")
    password = Password(body.password.get_secret_value())
    try:
        await run_in_threadpool(ctx.vault.unlock, principal.account.name, password)
    finally:
        password.wipe()
    return _status(ctx, principal)


@router.post("/lock", response_model=VaultOut, responses=responses(401, 403, 429))
def lock(principal: Trader, ctx: Ctx) -> VaultOut:
    """Close the vault now: bots of a password-mode user stop being able to trade."""
    ctx.vault.lock(principal.account.name)
    return _status(ctx, principal)
