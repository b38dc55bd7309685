"""ccxt's exceptions in, tradeguard's `VenueError`s out.

The split that matters is *definitive* versus *unknown*: a rejection (bad order, no funds, bad
key, rate limited before acceptance) means the order does not exist at the venue; a timeout, a
dropped connection or a 5xx means it may. Only the second kind sends `create_order` looking for
the order by its client id.

Messages keep the venue's own words (its error code and text) but lose every query string: a
signed URL carries a signature and a timestamp that have no business in a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import ccxt

from tradeguard.core.errors import (
    InsufficientFunds,
    MalformedReply,
    OrderNotFound,
    RateLimited,
    VenueAuthFailed,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)

__all__ = ["is_ambiguous", "translate"]

_QUERY = re.compile(r"\?\S*")
_MAX_MESSAGE = 300


def _message(error: BaseException) -> str:
    text = " ".join(str(error).split())  # one line
    text = _QUERY.sub("?…", text)
    return text[:_MAX_MESSAGE] or type(error).__name__


def is_ambiguous(error: BaseException) -> bool:
    """True when a write may have reached the venue: the outcome is unknown."""
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return False  # the venue refused to look at it
    return isinstance(error, ccxt.NetworkError | ccxt.BadResponse | ccxt.NullResponse)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def translate(
    error: BaseException, venue: str, headers: Mapping[str, str] | None = None
) -> VenueError:
    """The `VenueError` for a ccxt exception (anything else is re-raised by the caller)."""
    text = f"{venue}: {_message(error)}"
    if isinstance(error, ccxt.InsufficientFunds):
        return InsufficientFunds(text, venue=venue)
    if isinstance(error, ccxt.OrderNotFound):
        return OrderNotFound(text, venue=venue)
    if isinstance(error, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return VenueAuthFailed(text, venue=venue)
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return RateLimited(text, venue=venue, retry_after=_retry_after(headers))
    if isinstance(error, ccxt.InvalidNonce):
        return VenueRejected(f"{text} (is this host's clock in sync? run chronyc)", venue=venue)
    if isinstance(error, ccxt.BadResponse | ccxt.NullResponse):
        return MalformedReply(text, venue=venue)
    if isinstance(error, ccxt.NetworkError):
        return VenueUnavailable(text, venue=venue)
    if isinstance(error, ccxt.ExchangeError):
        return VenueRejected(text, venue=venue)
    return VenueError(text, venue=venue)
