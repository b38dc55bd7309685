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
# The venue's own error code inside ccxt's message: Binance `"code":-2010`, Bybit `"retCode":110007`
_CODE = re.compile(r'"(?:code|retCode|ret_code)"\s*:\s*"?(-?\d+)')
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
    found = _CODE.search(str(error))
    code = found.group(1) if found else None
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return RateLimited(text, venue=venue, code=code, retry_after=_retry_after(headers))
    if isinstance(error, ccxt.InvalidNonce):
        text = f"{text} (is this host's clock in sync? run chronyc)"
    kind = next((k for c, k in _KINDS if isinstance(error, c)), VenueError)
    return kind(text, venue=venue, code=code)


# Most specific first: ccxt's OrderNotFound is an InvalidOrder, InvalidNonce an ExchangeError.
_KINDS: tuple[tuple[type[BaseException], type[VenueError]], ...] = (
    (ccxt.InsufficientFunds, InsufficientFunds),
    (ccxt.OrderNotFound, OrderNotFound),
    (ccxt.AuthenticationError, VenueAuthFailed),
    (ccxt.PermissionDenied, VenueAuthFailed),
    (ccxt.AccountSuspended, VenueAuthFailed),
    (ccxt.InvalidNonce, VenueRejected),
    (ccxt.BadResponse, MalformedReply),
    (ccxt.NullResponse, MalformedReply),
    (ccxt.NetworkError, VenueUnavailable),
    (ccxt.ExchangeError, VenueRejected),
)
