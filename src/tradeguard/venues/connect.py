"""A stored credential, connected: the `CcxtVenue` that trades with it.

The venue opens the credential through `vault.use` for each private call, so a credential that
is blocked, removed or locked (password mode) stops trading at the next call.
"""

from __future__ import annotations

from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError
from tradeguard.vault import Vault
from tradeguard.venues.ccxt_venue import CcxtVenue
from tradeguard.venues.specs import spec_for

__all__ = ["ccxt_venue_for"]


def ccxt_venue_for(
    vault: Vault, settings: Settings, credential: str, *, venue: str | None = None
) -> CcxtVenue:
    """The venue for a stored credential; `venue` picks among those one key serves (a
    `binance` key trades `binance` spot and `binanceusdm` futures)."""
    info = vault.credential(credential)
    spec = spec_for(venue or info.venue)
    if spec.credential_venue != info.venue:
        raise ConfigError(
            f"credential {info.name} is a {info.venue} key; it cannot trade on {spec.name}"
        )
    credential_id = info.id
    return CcxtVenue(
        spec,
        lambda: vault.use(credential_id),
        api_url=settings.venue_api_urls.get(spec.name),
        testnet=spec.name in settings.venue_testnet,
    )
