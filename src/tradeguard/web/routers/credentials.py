"""The caller's venue credentials: list (masked public ids only), add, remove.

No response ever holds a secret field, not even masked: only the masked public identifiers the
vault keeps in clear. An add asks the venue what the key may do before anything is stored
(Binance, Bybit, Hyperliquid) and refuses a key that can withdraw or transfer funds; for a
venue that cannot be asked, the key is stored with a warning, as `tradeguard vault add` does.
Add and remove need a step-up (a fresh code, or the password without a second factor).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field, SecretStr, StringConstraints

from tradeguard.auth.service import Principal
from tradeguard.bots.registry import check_credential_unused
from tradeguard.core.errors import Conflict, NotFound
from tradeguard.secrets import Secret
from tradeguard.vault import VENUES, CredentialInfo, schema_for
from tradeguard.vault.schemas import validate_fields
from tradeguard.venues import MarketKind
from tradeguard.web.deps import ClientIp, Ctx, CurrentUser, Trader
from tradeguard.web.errors import responses
from tradeguard.web.routers.common import UUID_PATTERN, step_up
from tradeguard.web.schemas import NAME_PATTERN, StepUpFields

__all__ = ["router"]

router = APIRouter(prefix="/api/credentials", tags=["credentials"])

VenueName = Literal["binance", "bybit", "okx", "hyperliquid", "kalshi", "polymarket", "paper"]
FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# A PEM private key is the longest field: a 4096-bit RSA key is about 3.3 kB.
FieldValue = Annotated[SecretStr, Field(min_length=1, max_length=8192)]
CredentialId = Annotated[
    str, Path(min_length=36, max_length=36, pattern=UUID_PATTERN, description="The id")
]


class KeyCheckOut(BaseModel):
    """The venue's last answer on what the key may do (none for venues that cannot be asked)."""

    checked_at: datetime | None
    can_trade: bool | None
    can_withdraw: bool | None
    can_transfer: bool | None
    ip_restricted: bool | None = Field(description="None: the venue has no IP allow-lists")
    trade_kinds: list[str]
    expires_at: datetime | None
    blocked: bool = Field(description="Refused for trading until a person unblocks it")
    blocked_reason: str | None


class CredentialOut(BaseModel):
    id: str
    name: str
    venue: str
    public: dict[str, str] = Field(description="Masked public ids (key id, address); no secret")
    created_at: datetime
    rotated_at: datetime | None
    last_used_at: datetime | None
    key_check: KeyCheckOut

    @classmethod
    def of(cls, info: CredentialInfo) -> CredentialOut:
        return cls(
            id=info.id,
            name=info.name,
            venue=info.venue,
            public=dict(info.display),
            created_at=info.created_at,
            rotated_at=info.rotated_at,
            last_used_at=info.last_used_at,
            key_check=_key_check(info),
        )


def _flag(permissions: Mapping[str, object], name: str) -> bool | None:
    value = permissions.get(name)
    return value if isinstance(value, bool) else None


def _key_check(info: CredentialInfo) -> KeyCheckOut:
    p = info.permissions or {}
    kinds = p.get("trade_kinds")
    return KeyCheckOut(
        checked_at=info.permissions_checked_at,
        can_trade=_flag(p, "can_trade"),
        can_withdraw=_flag(p, "can_withdraw"),
        can_transfer=_flag(p, "can_transfer"),
        ip_restricted=_flag(p, "ip_restricted"),
        trade_kinds=[str(k) for k in kinds] if isinstance(kinds, list) else [],
        expires_at=info.key_expires_at,
        blocked=info.blocked,
        blocked_reason=info.blocked_reason,
    )


class CredentialAddBody(StepUpFields):
    name: str = Field(pattern=NAME_PATTERN, max_length=64, description="e.g. binance-main")
    venue: VenueName
    fields: dict[FieldName, FieldValue] = Field(
        default_factory=dict,
        max_length=8,
        description="The venue's fields (GET /api/credentials/venues); each is a secret",
    )
    trade: list[Literal["spot", "swap"]] | None = Field(
        default=None,
        max_length=2,
        description="What the key must be able to trade (default: every kind on that venue)",
    )


class CredentialAddedOut(BaseModel):
    credential: CredentialOut
    checked: bool = Field(description="The venue was asked and the key is trade-only")
    warnings: list[str]


class CredentialRemovedOut(BaseModel):
    credential: CredentialOut
    message: str


class VenueFieldOut(BaseModel):
    name: str
    label: str
    public: bool


class VenueOut(BaseModel):
    venue: str
    fields: list[VenueFieldOut]


def _owned(ctx: Ctx, principal: Principal, credential_id: str) -> CredentialInfo:
    for info in ctx.vault.credentials(principal.account.name):
        if info.id == credential_id:
            return info
    raise NotFound(f"no credential with id {credential_id}; GET /api/credentials lists yours")


def _parse_fields(body: CredentialAddBody) -> dict[str, Secret]:
    """The body's fields as the venue schema's Secret types. Missing or unknown field names
    are refused first, by the vault's own check (an unknown field's value is never read)."""
    schema = schema_for(body.venue)
    placeholders = {name: Secret("-") for name in body.fields}
    try:
        validate_fields(schema, placeholders)
    except TypeError:
        pass  # the names are right; the values are parsed next
    finally:
        _wipe(placeholders)
    parsed: dict[str, Secret] = {}
    try:
        for spec in schema.fields:
            parsed[spec.name] = spec.parse(body.fields[spec.name].get_secret_value())
    except BaseException:
        _wipe(parsed)
        raise
    return parsed


def _wipe(fields: Mapping[str, Secret]) -> None:
    for secret in fields.values():
        secret.wipe()


@router.get("", response_model=list[CredentialOut], responses=responses(401, 429))
def list_credentials(principal: CurrentUser, ctx: Ctx) -> list[CredentialOut]:
    """The caller's credentials, by name."""
    return [CredentialOut.of(c) for c in ctx.vault.credentials(principal.account.name)]


@router.get("/venues", response_model=list[VenueOut], responses=responses(401, 429))
def list_venues(_principal: CurrentUser) -> list[VenueOut]:
    """The venues a credential can be added for, and the fields each needs."""
    return [
        VenueOut(
            venue=venue,
            fields=[VenueFieldOut(name=f.name, label=f.label, public=f.public) for f in s.fields],
        )
        for venue, s in sorted(VENUES.items())
    ]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CredentialAddedOut,
    responses=responses(400, 401, 403, 409, 422, 429, 502, 503),
)
def add_credential(
    body: CredentialAddBody, principal: Trader, ctx: Ctx, ip: ClientIp
) -> CredentialAddedOut:
    """Check the key at its venue (where it can be asked) and store it encrypted; a key that
    can withdraw or transfer funds is refused (422) and never stored. Needs a step-up."""
    # ccxt takes about a second to import: the server pays for it on the first add only
    from tradeguard.venues.vetting import add_credential as add_checked

    user = principal.account.name
    if any(c.name == body.name for c in ctx.vault.credentials(user)):
        raise Conflict(f"you already have a credential named {body.name}; pick another name")
    fields = _parse_fields(body)  # bad values are refused before a step-up code is spent
    try:
        step_up(ctx, principal, body, ip)
        needs = None if body.trade is None else frozenset(MarketKind(k) for k in body.trade)
        added = asyncio.run(
            add_checked(
                ctx.vault, ctx.settings, user=user, venue=body.venue, name=body.name,
                fields=fields, needs=needs, actor=principal.actor, ip=ip,
            )
        )  # fmt: skip
    finally:
        _wipe(fields)
    return CredentialAddedOut(
        credential=CredentialOut.of(added.info), checked=added.checked,
        warnings=list(added.warnings),
    )  # fmt: skip


@router.delete(
    "/{credential_id}",
    response_model=CredentialRemovedOut,
    responses=responses(401, 403, 404, 409, 422, 429),
)
def remove_credential(
    credential_id: CredentialId, body: StepUpFields, principal: Trader, ctx: Ctx, ip: ClientIp
) -> CredentialRemovedOut:
    """Delete a credential (then revoke the key at the venue too). Refused while one of your
    bots trades with it. Needs a step-up."""
    info = _owned(ctx, principal, credential_id)
    check_credential_unused(ctx.engine, principal.account.name, info.name)
    step_up(ctx, principal, body, ip)
    removed = ctx.vault.remove_credential(info.id, actor=principal.actor, ip=ip)
    return CredentialRemovedOut(
        credential=CredentialOut.of(removed),
        message=f"removed {removed.name}; revoke the key at {removed.venue} too",
    )
