"""Login throttles and rate limits: each layer holds, an attacker's failures never lock the
owner out of a known address, and Redis shares the counters (or refuses when it is down)."""

from __future__ import annotations

import pytest
from limits.storage import MemoryStorage, Storage

from tradeguard.auth.throttle import LoginThrottle, RateLimits, open_storage
from tradeguard.core.errors import ServiceUnavailable, Throttled
from tradeguard.secrets import Secret

ATTACKER = "203.0.113.9"
OWNER = "198.51.100.7"


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    return open_storage(Secret("redis://127.0.0.1:6379/0"), prefix)


def _fail_until_throttled(throttle: LoginThrottle, ip: str, account: str, known: bool) -> int:
    for attempt in range(1, 200):
        try:
            throttle.before_check(ip, account, known=known)
        except Throttled:
            return attempt
        throttle.failed(ip, account, known=known)
    raise AssertionError("never throttled")


def test_one_address_guessing_one_account_is_slowed_after_five(storage: Storage) -> None:
    throttle = LoginThrottle(storage, unknown_rate="1000/second")
    assert _fail_until_throttled(throttle, ATTACKER, "alice", known=False) == 6
    with pytest.raises(Throttled) as raised:
        throttle.before_check(ATTACKER, "alice", known=False)
    assert 1 <= raised.value.retry_after <= 60


def test_the_attackers_failures_do_not_lock_the_owner_out(storage: Storage) -> None:
    throttle = LoginThrottle(storage, unknown_rate="1000/second")
    for ip in range(30):  # a botnet: 30 addresses, 5 guesses each, until each is throttled
        _fail_until_throttled(throttle, f"203.0.113.{ip}", "alice", known=False)
    with pytest.raises(Throttled):  # new addresses are now throttled for alice ...
        throttle.before_check("203.0.113.250", "alice", known=False)
    throttle.before_check(OWNER, "alice", known=True)  # ... the owner's known one is not


def test_one_address_trying_many_accounts_is_stopped(storage: Storage) -> None:
    throttle = LoginThrottle(storage, unknown_rate="1000/second")
    refused_at = None
    for n in range(100):
        try:
            throttle.before_check(ATTACKER, f"user{n}", known=False)
        except Throttled:
            refused_at = n
            break
        throttle.failed(ATTACKER, f"user{n}", known=False)
    assert refused_at == 30  # credential stuffing: 30 failures a minute from one address


def test_success_clears_the_pair_backoff(storage: Storage) -> None:
    throttle = LoginThrottle(storage, unknown_rate="1000/second")
    for _ in range(4):
        throttle.before_check(OWNER, "alice", known=True)
        throttle.failed(OWNER, "alice", known=True)
    throttle.succeeded(OWNER, "alice")
    for _ in range(5):
        throttle.before_check(OWNER, "alice", known=True)
        throttle.failed(OWNER, "alice", known=True)


def test_unknown_address_hashing_has_a_global_ceiling(storage: Storage) -> None:
    throttle = LoginThrottle(storage, unknown_rate="10/minute")
    for n in range(10):
        throttle.before_check(f"192.0.2.{n}", f"user{n}", known=False)
    with pytest.raises(Throttled, match="new addresses"):
        throttle.before_check("192.0.2.200", "user200", known=False)
    throttle.before_check(OWNER, "alice", known=True)  # known addresses do not count


def test_account_names_are_counted_case_insensitively(storage: Storage) -> None:
    throttle = LoginThrottle(storage, unknown_rate="1000/second")
    for name in ("alice", "Alice", "ALICE", " alice", "alicE"):
        throttle.before_check(ATTACKER, name, known=False)
        throttle.failed(ATTACKER, name, known=False)
    with pytest.raises(Throttled):
        throttle.before_check(ATTACKER, "aLiCe", known=False)


def test_api_rate_limits_per_user_and_for_everyone(storage: Storage) -> None:
    rates = RateLimits(storage, per_user="3/minute", everyone="5/minute")
    for _ in range(3):
        rates.user_request(1)
    with pytest.raises(Throttled) as raised:
        rates.user_request(1)
    assert raised.value.retry_after >= 1
    rates.user_request(2)  # another user has a budget of their own ...
    rates.user_request(2)
    with pytest.raises(Throttled):  # ... until everyone's is spent
        rates.user_request(3)


def test_redis_shares_counters_between_instances(redis_client: object, redis_prefix: str) -> None:
    url = Secret("redis://127.0.0.1:6379/0")
    first = LoginThrottle(open_storage(url, redis_prefix), unknown_rate="1000/second")
    second = LoginThrottle(open_storage(url, redis_prefix), unknown_rate="1000/second")
    for _ in range(5):
        first.failed(ATTACKER, "alice", known=False)
    with pytest.raises(Throttled):
        second.before_check(ATTACKER, "alice", known=False)


def test_redis_down_refuses_instead_of_letting_guesses_through() -> None:
    storage = open_storage(Secret("redis://127.0.0.1:1/0"), "tg-test-down")
    throttle = LoginThrottle(storage, unknown_rate="10/second")
    with pytest.raises(ServiceUnavailable, match="Redis"):
        throttle.before_check(ATTACKER, "alice", known=True)
