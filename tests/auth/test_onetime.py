"""Single-use tokens: used once, never after expiry, never from another address; in the
database (SQLite, PostgreSQL) and in Redis, with racing consumers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import sqlalchemy as sa

from tradeguard.auth.onetime import DbTokens, OneTimeTokens, RedisTokens
from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import TokenInvalid
from tradeguard.store import DatabaseTarget, create_engine, upgrade

USER = 1


@pytest.fixture
def engine(db_target: DatabaseTarget) -> Iterator[sa.Engine]:
    engine = create_engine(db_target)
    upgrade(engine, db_target)
    with engine.begin() as conn:  # a user row for the foreign key
        conn.execute(
            sa.text(
                "INSERT INTO users (id, name, created_at, vault_mode, wrapped_dek, dek_version, "
                "encryption_key_version) VALUES (1, 'alice', :t, 'service', :d, 1, 1)"
            ),
            {"t": ManualClock().now().replace(tzinfo=None), "d": b"x"},
        )
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["database", "redis"])
def tokens(request: pytest.FixtureRequest, engine: sa.Engine, clock: ManualClock) -> OneTimeTokens:
    if request.param == "database":
        return DbTokens(engine, clock)
    client: redis.Redis = request.getfixturevalue("redis_client")
    return RedisTokens(client, request.getfixturevalue("redis_prefix"))


def test_a_token_works_once(tokens: OneTimeTokens) -> None:
    token = tokens.issue("reset", user_id=USER, ttl=900)
    with token.reveal_text() as text:
        assert tokens.peek("reset", text).user_id == USER
        assert tokens.consume("reset", text).user_id == USER
        with pytest.raises(TokenInvalid, match="already used"):
            tokens.consume("reset", text)
        with pytest.raises(TokenInvalid):
            tokens.peek("reset", text)


def test_a_token_is_only_good_for_its_purpose(tokens: OneTimeTokens) -> None:
    token = tokens.issue("ws", user_id=USER, ttl=30, bound_to="127.0.0.1")
    with token.reveal_text() as text, pytest.raises(TokenInvalid):
        tokens.consume("reset", text)


def test_a_bound_token_from_another_address_is_refused_and_burned(tokens: OneTimeTokens) -> None:
    token = tokens.issue("ws", user_id=USER, ttl=30, bound_to="127.0.0.1")
    with token.reveal_text() as text:
        with pytest.raises(TokenInvalid, match="WebSocket ticket"):
            tokens.consume("ws", text, bound_to="127.0.0.2")
        with pytest.raises(TokenInvalid):
            tokens.consume("ws", text, bound_to="127.0.0.1")


@pytest.mark.parametrize("garbage", ["", "x", "a" * 129, "'; DROP TABLE users; --"])
def test_garbage_is_refused(tokens: OneTimeTokens, garbage: str) -> None:
    with pytest.raises(TokenInvalid):
        tokens.consume("reset", garbage)


def test_revoking_a_users_tokens_ends_them(tokens: OneTimeTokens) -> None:
    first = tokens.issue("reset", user_id=USER, ttl=900)
    tokens.revoke_user("reset", USER)
    with first.reveal_text() as text, pytest.raises(TokenInvalid):
        tokens.consume("reset", text)


def test_an_expired_database_token_is_refused(engine: sa.Engine, clock: ManualClock) -> None:
    tokens = DbTokens(engine, clock)
    token = tokens.issue("reset", user_id=USER, ttl=900)
    clock.advance(900)
    with token.reveal_text() as text, pytest.raises(TokenInvalid, match="expired"):
        tokens.consume("reset", text)


def test_a_redis_token_expires_by_redis_ttl(redis_client: redis.Redis, redis_prefix: str) -> None:
    tokens = RedisTokens(redis_client, redis_prefix)
    token = tokens.issue("ws", user_id=USER, ttl=0.05)
    time.sleep(0.2)
    with token.reveal_text() as text, pytest.raises(TokenInvalid):
        tokens.consume("ws", text)


def test_only_one_of_many_racing_consumers_wins(tokens: OneTimeTokens) -> None:
    token = tokens.issue("reset", user_id=USER, ttl=900)
    with token.reveal_text() as text:
        value = str(text)

    def attempt(_: int) -> bool:
        try:
            tokens.consume("reset", value)
        except TokenInvalid:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(16)))
    assert results.count(True) == 1


def test_only_the_hash_is_stored(engine: sa.Engine, clock: ManualClock) -> None:
    token = DbTokens(engine, clock).issue("reset", user_id=USER, ttl=900)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM auth_one_time_tokens")).scalar_one()
    with token.reveal() as view:
        assert bytes(view) not in bytes(stored)
        assert len(stored) == 32
