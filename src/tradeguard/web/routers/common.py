"""What the resource routers (credentials, bots, orders, risk, audit) share: path parameters,
the step-up check, and looking a bot up by id *and* owner.

Another user's object answers exactly like a missing one (404, same message shape), so an id
tells a caller nothing about who else has what.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from tradeguard.auth.service import Principal
from tradeguard.bots.registry import BotInfo, UnknownBot, owned_bot
from tradeguard.core.errors import NotFound
from tradeguard.web.context import AppContext
from tradeguard.web.schemas import StepUpFields

__all__ = ["UUID_PATTERN", "BotId", "bot_of", "step_up"]

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

BotId = Annotated[
    str, Path(min_length=36, max_length=36, pattern=UUID_PATTERN, description="The bot's id")
]


def bot_of(ctx: AppContext, principal: Principal, bot_id: str) -> BotInfo:
    """The caller's bot with this id; 404 for a missing bot and for another user's alike."""
    try:
        return owned_bot(ctx.engine, bot_id, principal.account.name)
    except UnknownBot:
        raise NotFound(f"no bot with id {bot_id}; GET /api/bots lists yours") from None


def step_up(ctx: AppContext, principal: Principal, body: StepUpFields, ip: str) -> None:
    """The fresh second factor (or current password) a sensitive action needs; raises if it
    is missing or wrong. The password's buffer is wiped either way."""
    with body.proof() as proof:
        ctx.accounts.step_up(principal, proof, ip)
