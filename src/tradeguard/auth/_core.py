"""The state every part of the account service shares: its collaborators, events, account
lookups and the remembered principals. The parts (logins, second_factors, recovery,
administration) each add one area of behaviour; auth.service puts them together."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import sqlalchemy as sa

from tradeguard.auth.accounts import Account, by_id
from tradeguard.auth.breached import BreachedPasswords
from tradeguard.auth.mail import Mailer
from tradeguard.auth.onetime import DbTokens, OneTimeTokens
from tradeguard.auth.passwords import PasswordHasher
from tradeguard.auth.principals import AuthConfig, LoginResult, Principal, StepUp
from tradeguard.auth.sessions import SessionStore
from tradeguard.auth.throttle import LoginThrottle, RateLimits
from tradeguard.auth.tokens import SessionKey
from tradeguard.core.clock import Clock
from tradeguard.core.events import Detail, DomainEvent, EventName, EventSink
from tradeguard.secrets import Password
from tradeguard.store.engine import for_writing
from tradeguard.store.models import User
from tradeguard.vault import Vault

__all__ = ["ServiceCore"]

users = cast(sa.Table, User.__table__)


class ServiceCore:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        vault: Vault,
        session_key: SessionKey,
        throttle: LoginThrottle,
        rates: RateLimits,
        tokens: OneTimeTokens,
        events: EventSink,
        clock: Clock,
        config: AuthConfig,
        breached: BreachedPasswords | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.engine = engine
        self.vault = vault
        self.session_key = session_key
        self.throttle = throttle
        self.rates = rates
        self.tokens = tokens
        self.events = events
        self.clock = clock
        self.config = config
        self.breached = breached
        self.mailer = mailer
        self.hasher = PasswordHasher(config.hash_params)
        self.sessions = SessionStore(config.timeouts)
        self._setup_tokens = DbTokens(engine, clock)
        self._principals: dict[str, tuple[Principal, float]] = {}
        self._known: dict[str, tuple[frozenset[str], float]] = {}
        self._resets: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=1000)
        self._reset_worker: threading.Thread | None = None
        self._reset_lock = threading.Lock()

    def _emit(
        self,
        name: EventName,
        *,
        actor: str | None,
        subject: str | None = None,
        ip: str | None = None,
        **details: Detail,
    ) -> None:
        self.events.emit(DomainEvent(name, self.clock.now(), actor, subject, details, ip))

    def account(self, user_id: int) -> Account:
        with self.engine.connect() as conn:
            return by_id(conn, user_id)

    def accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(users.c.id).order_by(users.c.id)).scalars().all()
            return [by_id(conn, i) for i in ids]

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A write transaction that takes SQLite's write lock up front (BEGIN IMMEDIATE).
        One that reads and then writes would otherwise fail at once, not wait, when another
        connection wrote in between ("database is locked"). PostgreSQL ignores the option."""
        with for_writing(self.engine.connect()) as conn, conn.begin():
            yield conn

    def forget_checks(self) -> None:
        """Drop every remembered principal: a session ended or an account changed."""
        self._principals.clear()

    # Parts of the service that other parts use; each is defined once, in the module named.

    def _verify_second_factor(self, account: Account, code: str, ip: str | None) -> None:
        raise NotImplementedError  # auth.second_factors

    def step_up(
        self, principal: Principal, proof: StepUp, ip: str, *, password_only: bool = False
    ) -> None:
        raise NotImplementedError  # auth.second_factors

    def reauthenticate(self, principal: Principal, proof: StepUp, ip: str) -> None:
        raise NotImplementedError  # auth.second_factors

    def check_new_password(self, password: Password, *inputs: str | None) -> None:
        raise NotImplementedError  # auth.recovery

    def renew_session(self, conn: sa.Connection, principal: Principal, reason: str) -> LoginResult:
        raise NotImplementedError  # auth.logins
