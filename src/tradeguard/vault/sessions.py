"""Unlock sessions: where a password-mode user's data key lives while their vault is open.

The DEK sits in a zeroizing, mlocked buffer. A session ends when it has been idle too long
(no `use()` for `idle_timeout`), when it is too old (`absolute_timeout` after the unlock, used
or not), or on `lock()`; ending zeroes the key. A locked user's `use()` raises `VaultLocked`
naming the user and how to unlock; other users are not affected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tradeguard.core.clock import Clock
from tradeguard.core.errors import VaultLocked
from tradeguard.crypto import DataKey

__all__ = ["DEFAULT_ABSOLUTE_TIMEOUT_S", "DEFAULT_IDLE_TIMEOUT_S", "UnlockSessions"]

DEFAULT_IDLE_TIMEOUT_S = 15 * 60
DEFAULT_ABSOLUTE_TIMEOUT_S = 12 * 60 * 60


@dataclass
class _Session:
    key: DataKey
    opened: float
    last_used: float


class UnlockSessions:
    """Open sessions by user id. Thread-safe; time comes from the injected clock."""

    def __init__(
        self,
        clock: Clock,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        absolute_timeout_s: float = DEFAULT_ABSOLUTE_TIMEOUT_S,
    ) -> None:
        if not 0 < idle_timeout_s <= absolute_timeout_s:
            raise ValueError("need 0 < idle timeout <= absolute timeout")
        self._clock = clock
        self._idle = idle_timeout_s
        self._absolute = absolute_timeout_s
        self._lock = threading.Lock()
        self._open: dict[int, _Session] = {}

    def open(self, user_id: int, key: DataKey) -> None:
        """Start (or restart) `user_id`'s session with `key`, which the session now owns."""
        key.lock_memory()
        now = self._clock.monotonic()
        with self._lock:
            old = self._open.pop(user_id, None)
            self._open[user_id] = _Session(key, now, now)
        if old is not None and old.key is not key:
            old.key.wipe()

    def key(self, user_id: int, user_name: str) -> DataKey:
        """The open session's key (refreshing its idle timer), or `VaultLocked`."""
        now = self._clock.monotonic()
        with self._lock:
            session = self._open.get(user_id)
            if session is not None and self._expired(session, now):
                del self._open[user_id]
                session.key.wipe()
                session = None
            if session is None:
                raise VaultLocked(
                    f"the vault of user {user_name} is locked (password mode): it opens with "
                    f"{user_name}'s vault password, which commands that need it ask for"
                )
            session.last_used = now
            return session.key

    def held(self) -> int:
        """How many sessions hold a key, expired ones included until they are swept. (Not
        `__len__`: an object with no open session must not read as false.)"""
        with self._lock:
            return len(self._open)

    def is_open(self, user_id: int) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            session = self._open.get(user_id)
            return session is not None and not self._expired(session, now)

    def close(self, user_id: int) -> bool:
        """Lock `user_id`'s vault now; True if a session was open."""
        with self._lock:
            session = self._open.pop(user_id, None)
        if session is None:
            return False
        session.key.wipe()
        return True

    def close_all(self) -> None:
        with self._lock:
            sessions, self._open = list(self._open.values()), {}
        for session in sessions:
            session.key.wipe()

    def sweep(self) -> list[int]:
        """End every expired session now (the server calls this each minute); their user ids."""
        now = self._clock.monotonic()
        with self._lock:
            expired = [uid for uid, s in self._open.items() if self._expired(s, now)]
            sessions = [self._open.pop(uid) for uid in expired]
        for session in sessions:
            session.key.wipe()
        return expired

    def _expired(self, session: _Session, now: float) -> bool:
        return now - session.last_used >= self._idle or now - session.opened >= self._absolute
