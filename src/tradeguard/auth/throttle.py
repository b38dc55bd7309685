"""Login throttles and API rate limits, on the `limits` library (memory, or Redis so that every
instance shares the counters).

Every login check happens before any password is hashed, in this order:

- **per address**: failures from one IP address, whatever the account (stops credential
  stuffing across many accounts);
- **per address and account**: failures for one account from one address, in widening
  windows (5 a minute, 10 in 15 minutes, 20 an hour, 50 a day): a backoff that roughly doubles
  the wait at each step. An attacker's failures count against the attacker's address, so they
  cannot lock the victim out;
- **per account, from unknown addresses**: failures for one account from addresses it has
  never logged in from (stops a botnet guessing one account from many addresses). Addresses the
  account has logged in from before are not affected, so the owner still gets in from them;
- **unknown-address hashing, all accounts**: how many password checks per second the server
  does for logins from unknown addresses. This is what keeps a distributed flood from spending
  every core on Argon2id.

Redis down is a refusal (503), never an open door: a throttle that fails open is no throttle.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import cast

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter

from tradeguard.core.errors import ServiceUnavailable, Throttled
from tradeguard.secrets import Secret

__all__ = ["LoginThrottle", "RateLimits", "open_storage"]

log = logging.getLogger(__name__)

PER_ADDRESS = "30/minute;200/hour;1000/day"
PER_PAIR = "5/minute;10/15 minutes;20/hour;50/day"
# Above what one address's pair budget allows (20 an hour, 50 a day), so it takes several
# addresses to reach: one or two attackers cannot shut the owner out of new addresses.
PER_ACCOUNT_UNKNOWN = "100/hour;300/day"
PER_ADDRESS_ANONYMOUS = "60/minute;600/hour"  # unauthenticated routes: reset, setup


def open_storage(redis_url: Secret | None, prefix: str) -> Storage:
    """Redis storage when a URL is set (keys under `prefix`), else this process's memory."""
    if redis_url is None:
        return MemoryStorage()
    with redis_url.reveal_text() as url:
        return cast(Storage, storage_from_string(url, key_prefix=prefix, wrap_exceptions=True))


class _Limiter:
    """A limiter whose storage errors become 503s. Moving windows (exact) for login throttles;
    fixed windows (one counter, a few microseconds) for request budgets on every API call."""

    def __init__(self, storage: Storage, *, moving: bool = True) -> None:
        strategy = MovingWindowRateLimiter if moving else FixedWindowRateLimiter
        self._limiter: RateLimiter = strategy(storage)

    def _call(self, what: str, fn: object, *args: object) -> object:
        try:
            return fn(*args)  # type: ignore[operator]
        except Exception as e:  # noqa: BLE001 - any storage failure: refuse, say why
            log.error("rate-limit storage failed during %s: %s", what, type(e).__name__)
            raise ServiceUnavailable(
                "the rate-limit store (Redis) is unreachable, so this request is refused; "
                "try again shortly"
            ) from None

    def over(self, items: Sequence[RateLimitItem], *key: str) -> int:
        """Seconds until every item has room again (0: none is full). Counts nothing."""
        wait = 0
        for item in items:
            if not self._call("test", self._limiter.test, item, *key):
                stats = self._call("stats", self._limiter.get_window_stats, item, *key)
                left = stats.reset_time - time.time()  # type: ignore[attr-defined]
                wait = max(wait, 1, math.ceil(left))
        return wait

    def hit(self, *budgets: tuple[Sequence[RateLimitItem], tuple[str, ...]]) -> int:
        """Count one against every budget, unless one is already full: then count nothing
        (a refused request spends no budget) and return the seconds to wait."""
        wait = max((self.over(items, *key) for items, key in budgets), default=0)
        if wait:
            return wait
        for items, key in budgets:
            for item in items:
                self._call("hit", self._limiter.hit, item, *key)
        return 0

    def try_hit(self, item: RateLimitItem, *key: str) -> bool:
        """Count one; False (having counted nothing on a moving window) if it was full."""
        return bool(self._call("hit", self._limiter.hit, item, *key))

    def count(self, items: Sequence[RateLimitItem], *key: str) -> None:
        """Count one failure against each window that still has room."""
        for item in items:
            self._call("hit", self._limiter.hit, item, *key)

    def clear(self, items: Sequence[RateLimitItem], *key: str) -> None:
        for item in items:
            self._call("clear", self._limiter.clear, item, *key)


def _throttled(wait: int, what: str) -> Throttled:
    return Throttled(f"too many {what}; try again in {wait} s", retry_after=wait)


class LoginThrottle:
    def __init__(self, storage: Storage, *, unknown_rate: str) -> None:
        self._limiter = _Limiter(storage)
        self.per_address = parse_many(PER_ADDRESS)
        self.per_pair = parse_many(PER_PAIR)
        self.per_account_unknown = parse_many(PER_ACCOUNT_UNKNOWN)
        self.unknown_hashing = parse_many(unknown_rate)

    def before_check(self, address: str, account: str, *, known: bool) -> None:
        """Raise `Throttled` if this attempt may not even be checked. Known means the account
        has logged in from this address before."""
        account = _account_key(account)
        checks = [
            (self.per_address, ("login-ip", address)),
            (self.per_pair, ("login-pair", address, account)),
        ]
        if not known:
            checks.append((self.per_account_unknown, ("login-unknown", account)))
        for items, key in checks:
            wait = self._limiter.over(items, *key)
            if wait:
                raise _throttled(wait, "failed logins")
        if not known:
            wait = self._limiter.hit((self.unknown_hashing, ("login-hashing",)))
            if wait:
                raise _throttled(wait, "logins from new addresses right now")

    def failed(self, address: str, account: str, *, known: bool) -> None:
        account = _account_key(account)
        self._limiter.count(self.per_address, "login-ip", address)
        self._limiter.count(self.per_pair, "login-pair", address, account)
        if not known:
            self._limiter.count(self.per_account_unknown, "login-unknown", account)

    def succeeded(self, address: str, account: str) -> None:
        self._limiter.clear(self.per_pair, "login-pair", address, _account_key(account))


def _account_key(account: str) -> str:
    return account.strip().lower()[:254]


class RateLimits:
    """Request budgets: per user and for everyone (authenticated API), per address
    (unauthenticated routes such as password reset)."""

    def __init__(self, storage: Storage, *, per_user: str, everyone: str) -> None:
        self._limiter = _Limiter(storage, moving=False)
        # In this process's memory: a check never blocks, so it may run on the event loop.
        self.local = isinstance(storage, MemoryStorage)
        self.per_user = parse_many(per_user)
        self.everyone = parse_many(everyone)
        self.anonymous = parse_many(PER_ADDRESS_ANONYMOUS)

    def user_request(self, user_id: int) -> None:
        """Count a request against the user's budget, then everyone's: one storage call each
        on the way through (this runs on every API call). A user over their own budget spends
        none of everyone's, so one user cannot use the shared budget up."""
        for items, key in (
            (self.per_user, ("api-user", str(user_id))),
            (self.everyone, ("api-all",)),
        ):
            for item in items:
                if not self._limiter.try_hit(item, *key):
                    raise _throttled(self._limiter.over([item], *key) or 1, "requests")

    def anonymous_request(self, address: str, route: str) -> None:
        wait = self._limiter.hit(
            (self.everyone, ("api-all",)), (self.anonymous, ("api-anon", route, address))
        )
        if wait:
            raise _throttled(wait, "requests")
