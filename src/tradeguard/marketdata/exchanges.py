"""ccxt exchange objects, created one way everywhere: async, rate-limited, on the configured
host. Public market data and the venues layer both get their exchanges here.

An API URL override (a mirror, a proxy, a loopback simulator) replaces the scheme and host of
every URL in the exchange's `urls['api']` and keeps each path, so `/api/v3`, `/fapi/v1` and
`/sapi/v1` all land on the one override host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt.async_support as ccxt_async

from tradeguard.config import check_venue_api_url
from tradeguard.core.errors import ConfigError

__all__ = ["CCXT_VENUES", "ccxt_exchange", "point_at"]

# tradeguard's venue name -> the ccxt class that speaks it.
CCXT_VENUES: Mapping[str, str] = {
    "binance": "binance",  # spot
    "binanceusdm": "binanceusdm",  # USDⓈ-M perpetual futures
    "bybit": "bybit",  # V5 unified: spot and linear perpetuals
    "hyperliquid": "hyperliquid",
}


def ccxt_exchange(
    venue: str,
    *,
    api_url: str | None = None,
    testnet: bool = False,
    config: Mapping[str, Any] | None = None,
) -> ccxt_async.Exchange:
    """A new ccxt exchange for `venue`; the caller closes it (`await exchange.close()`)."""
    try:
        cls = getattr(ccxt_async, CCXT_VENUES[venue])
    except KeyError:
        raise ConfigError(
            f"unknown venue {venue!r}; choose one of: {', '.join(sorted(CCXT_VENUES))}"
        ) from None
    exchange: ccxt_async.Exchange = cls({"enableRateLimit": True, **(config or {})})
    if testnet:
        exchange.set_sandbox_mode(True)
    if api_url is not None:
        point_at(exchange, venue, api_url)
    return exchange


def point_at(exchange: ccxt_async.Exchange, venue: str, base_url: str) -> None:
    check_venue_api_url(venue, base_url)
    base = urlsplit(base_url.rstrip("/"))
    exchange.urls["api"] = _rebased(exchange.urls["api"], base.scheme, base.netloc, base.path)


def _rebased(value: Any, scheme: str, netloc: str, prefix: str) -> Any:
    if isinstance(value, dict):
        return {k: _rebased(v, scheme, netloc, prefix) for k, v in value.items()}
    if isinstance(value, str):
        parts = urlsplit(value)
        return urlunsplit((scheme, netloc, prefix + parts.path, parts.query, ""))
    return value
