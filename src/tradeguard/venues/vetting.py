"""Vetting venue keys: refused before they are stored, re-checked later, blocked when they widen.

- `add_checked_credential`: ask the venue what the key can do, with the key still only in
  memory; refuse (and store nothing) if it can move funds or cannot trade what is needed.
- `recheck_credential`: the daily check. A key that has gained withdraw or transfer rights is
  blocked at once (the vault refuses it for trading from then on) and a `venue.key.widened`
  event, an alert, is emitted. Nothing trades with it until a person fixes the key and runs
  `unblock_credential`, which checks again first.
- A check that cannot reach the venue changes nothing: it is reported, never a reason to
  unblock and never, on its own, a reason to block.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from tradeguard.config import Settings
from tradeguard.core.errors import KeyPermissionRefused, VaultLocked, VenueError
from tradeguard.core.events import Detail, DomainEvent, EventName
from tradeguard.secrets import Secret, redact
from tradeguard.vault import CredentialInfo, Vault
from tradeguard.vault.schemas import schema_for, validate_fields
from tradeguard.venues.ccxt_venue import CcxtVenue, CredentialSource
from tradeguard.venues.keycheck import KeyVerdict
from tradeguard.venues.specs import SPECS, VenueSpec, spec_for
from tradeguard.venues.types import MarketKind

__all__ = [
    "AddedCredential",
    "CheckOutcome",
    "add_checked_credential",
    "add_credential",
    "checked_venues",
    "recheck_all",
    "recheck_credential",
    "unblock_credential",
]


def checked_venues() -> frozenset[str]:
    """The vault venues whose key permissions tradeguard can ask for."""
    return frozenset(spec.credential_venue for spec in SPECS.values())


@contextmanager
def redacted(fields: Mapping[str, Secret]) -> Iterator[None]:
    """A key not yet stored is redacted from logs while it is used, as `vault.use` does."""
    for secret in fields.values():
        redact.register(secret)
    try:
        yield
    finally:
        for secret in fields.values():
            redact.unregister(secret)


def _venue(spec: VenueSpec, credentials: CredentialSource, settings: Settings) -> CcxtVenue:
    return CcxtVenue(
        spec,
        credentials,
        api_url=settings.venue_api_urls.get(spec.name),
        testnet=spec.name in settings.venue_testnet,
    )


async def _verdict(
    spec: VenueSpec, credentials: CredentialSource, settings: Settings, needs: frozenset[MarketKind]
) -> KeyVerdict:
    venue = _venue(spec, credentials, settings)
    try:
        return await venue.check_key(needs)
    finally:
        await venue.close()


def _summary(verdict: KeyVerdict) -> dict[str, Detail]:
    p = verdict.permissions
    return {
        "can_trade": p.can_trade,
        "can_withdraw": p.can_withdraw,
        "can_transfer": p.can_transfer,
        "ip_restricted": p.ip_restricted,
        "trade_kinds": sorted(k.value for k in p.trade_kinds),
        "refusals": list(verdict.refusals),
        "warnings": list(verdict.warnings),
    }


def _emit(
    vault: Vault,
    event: EventName,
    subject: str | None,
    actor: str,
    verdict: KeyVerdict,
    ip: str | None = None,
    **extra: Detail,
) -> None:
    details = {"venue": verdict.venue, **_summary(verdict), **extra}
    vault.events.emit(DomainEvent(event, vault.clock.now(), actor, subject, details, ip))


def _record(vault: Vault, info: CredentialInfo, verdict: KeyVerdict) -> CredentialInfo:
    raw: dict[str, Detail] = {**_summary(verdict), "venue_reply": _plain(verdict.permissions.raw)}
    return vault.record_key_check(info.id, raw, verdict.permissions.expires_at)


def _plain(value: object) -> Detail:
    """The venue's reply as audit-safe details: strings, numbers, booleans, lists, maps."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


async def add_checked_credential(
    vault: Vault,
    settings: Settings,
    *,
    user: str,
    venue: str,
    name: str,
    fields: Mapping[str, Secret],
    needs: frozenset[MarketKind] | None = None,
    actor: str = "operator",
    ip: str | None = None,
) -> tuple[CredentialInfo, KeyVerdict]:
    """Check a key at its venue, then store it; a refused key is never stored. `actor` and
    `ip` say who asked (every event names them)."""
    spec = spec_for(venue)
    validate_fields(schema_for(spec.credential_venue), fields)
    vault.user(user)  # an unknown user fails before the venue is asked anything
    needs = spec.kinds if needs is None else needs
    with redacted(fields):
        verdict = await _verdict(spec, lambda: nullcontext(fields), settings, needs)
    if not verdict.accepted:
        _emit(vault, EventName.VENUE_KEY_REFUSED, None, actor, verdict, ip, name=name)
        verdict.raise_if_refused()
    info = vault.add_credential(user, spec.credential_venue, name, fields, actor=actor, ip=ip)
    info = _record(vault, info, verdict)
    _emit(vault, EventName.VENUE_KEY_CHECKED, info.id, actor, verdict, ip)
    return info, verdict


@dataclass(frozen=True)
class AddedCredential:
    info: CredentialInfo
    checked: bool  # the venue said what the key may do (and it is trade-only)
    warnings: tuple[str, ...]


async def add_credential(
    vault: Vault,
    settings: Settings,
    *,
    user: str,
    venue: str,
    name: str,
    fields: Mapping[str, Secret],
    needs: frozenset[MarketKind] | None = None,
    actor: str = "operator",
    ip: str | None = None,
) -> AddedCredential:
    """Store a credential the safest way its venue allows: checked first where tradeguard can
    ask the venue what a key may do (`add_checked_credential`), else stored with a warning that
    the person must make sure it cannot move funds (the paper venue has no key)."""
    if venue in checked_venues():
        info, verdict = await add_checked_credential(
            vault, settings, user=user, venue=venue, name=name, fields=fields, needs=needs,
            actor=actor, ip=ip,
        )  # fmt: skip
        return AddedCredential(info, True, verdict.warnings)
    info = vault.add_credential(user, venue, name, fields, actor=actor, ip=ip)
    warnings = () if venue == "paper" else (
        f"tradeguard cannot ask {venue} what this key may do; make sure it cannot withdraw or "
        "transfer funds",
    )  # fmt: skip
    return AddedCredential(info, False, warnings)


@dataclass(frozen=True)
class CheckOutcome:
    credential: CredentialInfo
    verdict: KeyVerdict | None  # None when the venue could not be asked
    error: str | None = None
    newly_blocked: bool = False


async def recheck_credential(vault: Vault, settings: Settings, credential: str) -> CheckOutcome:
    """The daily check of one stored credential; blocks it if it can now move funds.

    A venue that does not answer, or a password-mode user's locked vault, leaves the credential
    unchecked (reported), and the other credentials are still checked."""
    info = vault.credential(credential)
    spec = spec_for(info.venue)  # checked on its stored venue: a binance key on spot's endpoint
    try:
        verdict = await _verdict(
            spec, lambda: vault.use(info.id, purpose="check"), settings, frozenset()
        )
    except (VenueError, VaultLocked) as e:
        return CheckOutcome(info, None, e.message)
    info = _record(vault, info, verdict)
    _emit(vault, EventName.VENUE_KEY_CHECKED, info.id, "system", verdict)
    if not verdict.permissions.moves_funds:
        return CheckOutcome(info, verdict)
    newly = not info.blocked
    reason = f"the key can now move funds off the venue ({'; '.join(verdict.refusals)})"
    info = vault.block_credential(info.id, reason)
    if newly:
        _emit(vault, EventName.VENUE_KEY_WIDENED, info.id, "system", verdict)
    return CheckOutcome(info, verdict, newly_blocked=newly)


async def recheck_all(vault: Vault, settings: Settings) -> list[CheckOutcome]:
    """Every stored credential of a venue that can be checked, one after the other."""
    venues = checked_venues()
    return [
        await recheck_credential(vault, settings, info.id)
        for info in vault.credentials()
        if info.venue in venues
    ]


async def unblock_credential(vault: Vault, settings: Settings, credential: str) -> CredentialInfo:
    """Unblock after a fresh check says the key is trade-only again."""
    info = vault.credential(credential)
    outcome = await recheck_credential(vault, settings, info.id)
    if outcome.verdict is None:
        raise KeyPermissionRefused(
            f"cannot unblock {info.name}: the venue could not be asked ({outcome.error}); "
            "try again when it answers",
            venue=info.venue,
        )
    if outcome.verdict.permissions.moves_funds:
        outcome.verdict.raise_if_refused()
    return vault.unblock_credential(info.id)
