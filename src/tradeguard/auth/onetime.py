"""Single-use tokens: password reset (15 min), WebSocket tickets (30 s), first-admin setup.

Only the SHA-256 of a token is stored. Consuming is one atomic step, so two requests racing
with the same token cannot both win: a conditional UPDATE in the database, GETDEL in Redis.
A token bound to an address (a WebSocket ticket, bound to the client IP) presented from
another address is burned and refused.
"""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol, cast

import sqlalchemy as sa

from tradeguard.auth.tokens import hash_token, new_token
from tradeguard.core.clock import Clock
from tradeguard.core.errors import TokenInvalid
from tradeguard.secrets import Token
from tradeguard.store.models import OneTimeToken

__all__ = ["DbTokens", "OneTimeTokens", "Purpose", "Redeemed", "RedisTokens"]

Purpose = Literal["reset", "ws", "setup"]
table = cast(sa.Table, OneTimeToken.__table__)
_MAX_TOKEN = 128


@dataclass(frozen=True)
class Redeemed:
    user_id: int | None
    bound_to: str | None
    session_id: str | None = None


class OneTimeTokens(Protocol):
    def issue(
        self,
        purpose: Purpose,
        *,
        user_id: int | None,
        ttl: float,
        bound_to: str | None = None,
        session_id: str | None = None,
    ) -> Token: ...

    def peek(self, purpose: Purpose, token: str) -> Redeemed:
        """What a live token is for, without using it up (`TokenInvalid` if it is not live)."""
        ...

    def consume(self, purpose: Purpose, token: str, *, bound_to: str | None = None) -> Redeemed:
        """Use the token up; `TokenInvalid` if unknown, expired, used or bound elsewhere."""
        ...

    def revoke_user(self, purpose: Purpose, user_id: int) -> None: ...


def _invalid(purpose: Purpose) -> TokenInvalid:
    what = {"reset": "reset link", "ws": "WebSocket ticket", "setup": "setup token"}[purpose]
    return TokenInvalid(f"the {what} is invalid, expired or already used; ask for a new one")


def _checked(purpose: Purpose, token: str) -> bytes:
    if not token or len(token) > _MAX_TOKEN:
        raise _invalid(purpose)
    return hash_token(token)


class DbTokens:
    """One-time tokens in the `auth_one_time_tokens` table."""

    def __init__(self, engine: sa.Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def issue(
        self,
        purpose: Purpose,
        *,
        user_id: int | None,
        ttl: float,
        bound_to: str | None = None,
        session_id: str | None = None,
    ) -> Token:
        token = new_token()
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.expires_at < now))  # keep the table small
            conn.execute(
                table.insert().values(
                    token_hash=hash_token(token),
                    purpose=purpose,
                    user_id=user_id,
                    bound_to=bound_to,
                    session_id=session_id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                )
            )
        return token

    def _live(self, purpose: Purpose, digest: bytes, now: datetime) -> sa.ColumnElement[bool]:
        return sa.and_(
            table.c.token_hash == digest,
            table.c.purpose == purpose,
            table.c.consumed_at.is_(None),
            table.c.expires_at > now,
        )

    def peek(self, purpose: Purpose, token: str) -> Redeemed:
        digest = _checked(purpose, token)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(table.c.user_id, table.c.bound_to, table.c.session_id).where(
                    self._live(purpose, digest, self.clock.now())
                )
            ).first()
        if row is None:
            raise _invalid(purpose)
        return Redeemed(row.user_id, row.bound_to, row.session_id)

    def consume(self, purpose: Purpose, token: str, *, bound_to: str | None = None) -> Redeemed:
        digest = _checked(purpose, token)
        now = self.clock.now()
        with self.engine.begin() as conn:
            used = conn.execute(
                table.update()
                .where(self._live(purpose, digest, now))
                .values(consumed_at=now)
                .returning(table.c.user_id, table.c.bound_to, table.c.session_id)
            ).first()
        if used is None or (used.bound_to is not None and used.bound_to != bound_to):
            raise _invalid(purpose)
        return Redeemed(used.user_id, used.bound_to, used.session_id)

    def revoke_user(self, purpose: Purpose, user_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(
                    table.c.user_id == user_id,
                    table.c.purpose == purpose,
                    table.c.consumed_at.is_(None),
                )
                .values(consumed_at=self.clock.now())
            )


class RedisTokens:
    """One-time tokens in Redis, shared by every instance; expiry is Redis's own TTL.

    Time here is Redis's clock, not the injectable one: tests of expiry use the database store.
    """

    def __init__(self, client: object, prefix: str) -> None:
        self.client: _Redis = cast(_Redis, client)
        self.prefix = prefix

    def _key(self, purpose: Purpose, digest: bytes) -> str:
        return f"{self.prefix}:ott:{purpose}:{digest.hex()}"

    def _user_key(self, purpose: Purpose, user_id: int) -> str:
        return f"{self.prefix}:ott-user:{purpose}:{user_id}"

    def issue(
        self,
        purpose: Purpose,
        *,
        user_id: int | None,
        ttl: float,
        bound_to: str | None = None,
        session_id: str | None = None,
    ) -> Token:
        token = new_token()
        key = self._key(purpose, hash_token(token))
        value = json.dumps({"user_id": user_id, "bound_to": bound_to, "session_id": session_id})
        milliseconds = max(1, int(ttl * 1000))
        self.client.set(key, value, px=milliseconds)
        if user_id is not None:
            user_key = self._user_key(purpose, user_id)
            self.client.sadd(user_key, key)
            self.client.pexpire(user_key, milliseconds)
        return token

    def peek(self, purpose: Purpose, token: str) -> Redeemed:
        return self._redeemed(
            purpose, self.client.get(self._key(purpose, _checked(purpose, token)))
        )

    def consume(self, purpose: Purpose, token: str, *, bound_to: str | None = None) -> Redeemed:
        raw = self.client.getdel(self._key(purpose, _checked(purpose, token)))
        redeemed = self._redeemed(purpose, raw)
        if redeemed.bound_to is not None and redeemed.bound_to != bound_to:
            raise _invalid(purpose)
        return redeemed

    def revoke_user(self, purpose: Purpose, user_id: int) -> None:
        user_key = self._user_key(purpose, user_id)
        keys = self.client.smembers(user_key)
        if keys:
            self.client.delete(*keys)
        self.client.delete(user_key)

    def _redeemed(self, purpose: Purpose, raw: bytes | str | None) -> Redeemed:
        if raw is None:
            raise _invalid(purpose)
        data = json.loads(raw)
        return Redeemed(data["user_id"], data["bound_to"], data.get("session_id"))


class _Redis(Protocol):
    """The part of redis-py's client these stores use."""

    def set(self, name: str, value: str, *, px: int) -> object: ...
    def get(self, name: str) -> bytes | None: ...
    def getdel(self, name: str) -> bytes | None: ...
    def sadd(self, name: str, *values: str) -> object: ...
    def smembers(self, name: str) -> AbstractSet[bytes]: ...
    def pexpire(self, name: str, time: int) -> object: ...
    def delete(self, *names: str | bytes) -> object: ...
