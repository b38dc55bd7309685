"""Fixtures for the account layer: the store on SQLite and PostgreSQL, Redis when asked for."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from tests.conftest import IN_CI

REDIS_URL = os.environ.get("TG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> str:
    """The Redis URL, after checking the server answers; skip (or fail in CI) if not."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as e:
        reason = f"Redis at {REDIS_URL} unreachable: {type(e).__name__}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: Redis tests must run)")
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_or_skip())
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"tg-test:{uuid.uuid4().hex}"
    yield prefix
    keys = list(redis_client.scan_iter(f"{prefix}*"))
    keys += list(redis_client.scan_iter(f"LIMITS:{prefix}*"))
    if keys:
        redis_client.delete(*keys)
