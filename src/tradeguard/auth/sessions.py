"""Login sessions and their refresh tokens.

A session is one login. It carries an idle timeout (no refresh or request for that long ends
it) and an absolute one (it ends that long after login, whatever happens). Each refresh rotates
the refresh token: the old one is marked used and a new one issued, in one transaction. A used
token shown again means two parties hold the same token (one of them stole it), so the whole
session, every token it issued, is revoked and an alert raised.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa

from tradeguard.auth.tokens import hash_token, new_token
from tradeguard.core.errors import TokenInvalid
from tradeguard.secrets import Token
from tradeguard.store.models import AuthSession, RefreshToken

__all__ = ["MAX_SESSIONS", "SessionRow", "SessionStore", "Timeouts"]

sessions = cast(sa.Table, AuthSession.__table__)
refresh_tokens = cast(sa.Table, RefreshToken.__table__)
# A request refreshes `last_seen_at` at most this often: one write a minute, not one a request.
_TOUCH_EVERY = timedelta(seconds=60)
# Live sessions an account may hold (browsers, phones, scripts); a new login ends the oldest.
MAX_SESSIONS = 10


@dataclass(frozen=True)
class Timeouts:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True)
class SessionRow:
    id: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    ip: str | None
    user_agent: str | None

    def live(self, now: datetime, timeouts: Timeouts) -> bool:
        return (
            self.revoked_at is None
            and now < self.expires_at
            and now < self.last_seen_at + timeouts.idle
        )


class ReusedRefreshToken(TokenInvalid):
    """A rotated refresh token came back: its session has been revoked."""

    def __init__(self, session_id: str, user_id: int) -> None:
        super().__init__("this refresh token was already used; the session is ended, log in again")
        self.session_id = session_id
        self.user_id = user_id


def _ended() -> TokenInvalid:
    return TokenInvalid("the session has ended or the refresh token is invalid; log in again")


class SessionStore:
    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts

    def start(
        self,
        conn: sa.Connection,
        user_id: int,
        now: datetime,
        *,
        ip: str | None,
        user_agent: str | None,
    ) -> tuple[SessionRow, Token]:
        """A new session and its first refresh token."""
        session_id = secrets.token_hex(16)
        conn.execute(
            sessions.insert().values(
                id=session_id,
                user_id=user_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + self.timeouts.absolute,
                ip=ip,
                user_agent=(user_agent or "")[:256] or None,
            )
        )
        token = self._issue(conn, session_id, now)
        self._keep_newest(conn, user_id, now)
        self.prune(conn, user_id, now)
        return self.get(conn, session_id), token

    def _keep_newest(self, conn: sa.Connection, user_id: int, now: datetime) -> None:
        """At most `MAX_SESSIONS` live sessions an account: a new login ends the oldest."""
        live = [s.id for s in self.live_sessions(conn, user_id, now)]
        for session_id in live[MAX_SESSIONS:]:
            self.revoke(conn, session_id, now, "too_many_sessions")

    def _issue(self, conn: sa.Connection, session_id: str, now: datetime) -> Token:
        token = new_token()
        conn.execute(
            refresh_tokens.insert().values(
                token_hash=hash_token(token), session_id=session_id, issued_at=now
            )
        )
        return token

    def get(self, conn: sa.Connection, session_id: str) -> SessionRow:
        row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()
        if row is None:
            raise _ended()
        return _row(row)

    def needs_touch(self, session: SessionRow, now: datetime) -> bool:
        """Whether a request should move the session's idle clock (at most once a minute:
        one write a minute, not one a request)."""
        return now - session.last_seen_at >= _TOUCH_EVERY

    def touch(self, conn: sa.Connection, session_id: str, now: datetime) -> None:
        conn.execute(sessions.update().where(sessions.c.id == session_id).values(last_seen_at=now))

    def session_of(self, conn: sa.Connection, presented: str) -> str:
        """The session a refresh token belongs to (used or not), for the CSRF check."""
        if not presented or len(presented) > 128:
            raise _ended()
        session_id = conn.execute(
            sa.select(refresh_tokens.c.session_id).where(
                refresh_tokens.c.token_hash == hash_token(presented)
            )
        ).scalar()
        if session_id is None:
            raise _ended()
        return str(session_id)

    def rotate(
        self, conn: sa.Connection, presented: str, now: datetime
    ) -> tuple[SessionRow, Token]:
        """Trade a refresh token for a new one. Reuse revokes the session and raises
        `ReusedRefreshToken` (commit the transaction anyway: the revocation must stick)."""
        if not presented or len(presented) > 128:
            raise _ended()
        digest = hash_token(presented)
        row = conn.execute(
            sa.select(refresh_tokens.c.session_id, refresh_tokens.c.used_at).where(
                refresh_tokens.c.token_hash == digest
            )
        ).first()
        if row is None:
            raise _ended()
        session = self.get(conn, row.session_id)
        # Marking it used is conditional: of two requests racing with one token, one wins and
        # the other is a reuse.
        claimed = conn.execute(
            refresh_tokens.update()
            .where(refresh_tokens.c.token_hash == digest, refresh_tokens.c.used_at.is_(None))
            .values(used_at=now)
        ).rowcount
        if row.used_at is not None or claimed != 1:
            if session.revoked_at is None:
                self.revoke(conn, session.id, now, "refresh_reuse")
            raise ReusedRefreshToken(session.id, session.user_id)
        if not session.live(now, self.timeouts):
            raise _ended()
        conn.execute(sessions.update().where(sessions.c.id == session.id).values(last_seen_at=now))
        return self.get(conn, session.id), self._issue(conn, session.id, now)

    def revoke(self, conn: sa.Connection, session_id: str, now: datetime, reason: str) -> bool:
        done = conn.execute(
            sessions.update()
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        ).rowcount
        return bool(done)

    def revoke_all(
        self,
        conn: sa.Connection,
        user_id: int,
        now: datetime,
        reason: str,
        *,
        keep: str | None = None,
    ) -> int:
        """End every session of a user (but `keep`); the count ended."""
        where = [sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None)]
        if keep is not None:
            where.append(sessions.c.id != keep)
        return int(
            conn.execute(
                sessions.update().where(*where).values(revoked_at=now, revoked_reason=reason)
            ).rowcount
        )

    def live_sessions(self, conn: sa.Connection, user_id: int, now: datetime) -> list[SessionRow]:
        rows = conn.execute(
            sa.select(sessions)
            .where(
                sessions.c.user_id == user_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
                sessions.c.last_seen_at > now - self.timeouts.idle,
            )
            .order_by(sessions.c.created_at.desc())
        )
        return [_row(r) for r in rows]

    def prune(self, conn: sa.Connection, user_id: int, now: datetime) -> None:
        """Delete the user's sessions that ended long enough ago to be of no more use (a day
        past their absolute timeout); their refresh tokens go with them."""
        conn.execute(
            sessions.delete().where(
                sessions.c.user_id == user_id, sessions.c.expires_at < now - timedelta(days=1)
            )
        )


def _row(row: sa.Row[tuple[object, ...]]) -> SessionRow:
    m = row._mapping
    return SessionRow(
        id=m["id"],
        user_id=m["user_id"],
        created_at=m["created_at"],
        last_seen_at=m["last_seen_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        ip=m["ip"],
        user_agent=m["user_agent"],
    )
