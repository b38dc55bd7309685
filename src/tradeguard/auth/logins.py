"""Logins and sessions: the password (and second factor) to a session, access tokens checked
and remembered, refresh with rotation, logout, WebSocket tickets.

Throttles come first: no password is hashed for a throttled attempt. A wrong name, a wrong
password and a disabled account give the same error, and an unknown name costs the same
hashing work as a known one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NoReturn, cast

import sqlalchemy as sa

from tradeguard.auth import addresses
from tradeguard.auth._core import ServiceCore
from tradeguard.auth.accounts import Account, by_id, by_login
from tradeguard.auth.principals import LoginResult, Principal, StepUp
from tradeguard.auth.sessions import ReusedRefreshToken, SessionRow
from tradeguard.auth.tokens import AccessClaims, access_lifetime
from tradeguard.core.errors import (
    InvalidCode,
    LoginFailed,
    NotFound,
    SecondFactorRequired,
    TokenInvalid,
)
from tradeguard.core.events import EventName
from tradeguard.secrets import Password, Token
from tradeguard.store.models import User

__all__ = ["Logins"]

users = cast(sa.Table, User.__table__)

TICKET_TTL_S = 30
# How long a checked access token is taken on trust before its session and account are read
# again. Changes made through this process take effect at once (the cache is dropped); this
# bounds how late another instance sees a logout or a disabled account.
PRINCIPAL_RECHECK_S = 2.0
# How long the addresses an account has logged in from are taken from memory by the throttle.
KNOWN_RECHECK_S = 10.0
_KNOWN_CACHE_SIZE = 10_000
_PRINCIPAL_CACHE_SIZE = 10_000


class Logins(ServiceCore):
    def login(
        self,
        login: str,
        password: Password,
        *,
        code: str | None,
        ip: str,
        user_agent: str | None,
    ) -> LoginResult:
        known = self._is_known(login, ip)
        self.throttle.before_check(ip, login, known=known)
        with self.engine.connect() as conn:
            account = by_login(conn, login)
        if account is None or not account.can_log_in or account.password_hash is None:
            self.hasher.burn(password)
            self._login_failed(ip, login, known, account, "wrong_password")
        else:
            try:
                self.hasher.verify(account.password_hash, password)
            except LoginFailed:
                self._login_failed(ip, login, known, account, "wrong_password")
            if account.totp_enabled:
                if not code:
                    raise SecondFactorRequired(
                        "this account uses two-factor authentication: send the code from the "
                        "authenticator app (or a backup code) as `code`"
                    )
                try:
                    self._verify_second_factor(account, code, ip)
                except InvalidCode:
                    # The right password with a wrong code: the password has probably leaked.
                    self._login_failed(ip, login, known, account, "second_factor")
            self._rehash_if_needed(account, password)
        self.throttle.succeeded(ip, login)
        self._known.pop(login.strip().lower(), None)  # this address may be new: read again
        return self._start_session(account, ip, user_agent)

    def _is_known(self, login: str, ip: str) -> bool:
        """Whether the account `login` names has logged in from `ip` before. Remembered for
        `KNOWN_RECHECK_S` a login, so a flood of guesses against a few names is throttled
        without a database read each (every address is a miss for a name that has none)."""
        key = login.strip().lower()
        now = self.clock.monotonic()
        cached = self._known.get(key)
        if cached is None or now - cached[1] >= KNOWN_RECHECK_S:
            with self.engine.connect() as conn:
                account = by_login(conn, login)
                seen = addresses.known_addresses(conn, account.id) if account else frozenset()
            if len(self._known) >= _KNOWN_CACHE_SIZE:
                self._known.clear()
            cached = self._known[key] = (seen, now)
        return ip in cached[0]

    def _login_failed(
        self,
        ip: str,
        login: str,
        known: bool,
        account: Account | None,
        reason: str,
    ) -> NoReturn:
        self.throttle.failed(ip, login, known=known)
        self._emit(
            EventName.AUTH_LOGIN_FAILED,
            actor=None,
            subject=account.owner if account else None,
            ip=ip,
            reason=reason,
        )
        if reason == "second_factor":
            raise InvalidCode("wrong or expired code")
        raise LoginFailed("wrong name or password")

    def _rehash_if_needed(self, account: Account, password: Password) -> None:
        if account.password_hash and self.hasher.needs_rehash(account.password_hash):
            phc = self.hasher.hash(password)
            with self.writing() as conn:
                conn.execute(
                    users.update().where(users.c.id == account.id).values(password_hash=phc)
                )

    def _start_session(self, account: Account, ip: str, user_agent: str | None) -> LoginResult:
        now = self.clock.now()
        with self.writing() as conn:
            session, refresh = self.sessions.start(
                conn, account.id, now, ip=ip, user_agent=user_agent
            )
            new_address = addresses.record(conn, account.id, ip, "login", now)
        if new_address:
            self._emit(EventName.AUTH_NEW_IP, actor=account.owner, ip=ip, kind="login")
        self._emit(
            EventName.AUTH_LOGIN_SUCCEEDED,
            actor=account.owner,
            subject=f"session:{session.id}",
            ip=ip,
            second_factor=account.totp_enabled,
        )
        return self._result(account, session, refresh, now)

    def _result(
        self, account: Account, session: SessionRow, refresh: Token, now: datetime
    ) -> LoginResult:
        expires = access_lifetime(now, self.config.access_ttl)
        claims = AccessClaims(
            user_id=account.id,
            session_id=session.id,
            role=account.role.value,
            issued_at=now,
            expires_at=expires,
            token_id=uuid.uuid4().hex,
        )
        return LoginResult(
            account=account,
            session=session,
            access_token=self.session_key.issue(claims),
            access_expires_at=expires,
            refresh_token=refresh,
            csrf_token=self.session_key.csrf_token(session.id),
        )

    def renew_session(self, conn: sa.Connection, principal: Principal, reason: str) -> LoginResult:
        """End the caller's session and start a new one for the same client, in `conn`'s
        transaction: after a privilege change (a second factor turned on, a new password) the
        tokens that existed before it stop working, the caller's included."""
        now = self.clock.now()
        old = principal.session
        self.sessions.revoke(conn, old.id, now, reason)
        session, refresh = self.sessions.start(
            conn, principal.account.id, now, ip=old.ip, user_agent=old.user_agent
        )
        return self._result(by_id(conn, principal.account.id), session, refresh, now)

    def authenticate(self, access_token: str) -> Principal:
        """The principal behind an access token, with its session and account checked.

        A check is remembered for `PRINCIPAL_RECHECK_S` (the API's hot path would otherwise be
        a signature check and two queries a request). Everything this service does that ends
        a session or changes an account forgets every remembered check at once; a change made
        by another instance is seen within `PRINCIPAL_RECHECK_S`.
        """
        principal = self.remembered(access_token)
        if principal is not None:
            return principal
        principal = self._check_principal(access_token, self.clock.now())
        if len(self._principals) >= _PRINCIPAL_CACHE_SIZE:
            self._principals.clear()
        self._principals[access_token] = (principal, self.clock.monotonic())
        return principal

    def remembered(self, access_token: str) -> Principal | None:
        """The principal of a token checked less than `PRINCIPAL_RECHECK_S` ago and not yet
        expired, or None. No I/O: safe on the event loop."""
        cached = self._principals.get(access_token)
        if cached is None:
            return None
        principal, checked_at = cached
        fresh = self.clock.monotonic() - checked_at < PRINCIPAL_RECHECK_S
        if fresh and self.clock.now() < principal.claims.expires_at:
            return principal
        self._principals.pop(access_token, None)
        return None

    def _check_principal(self, access_token: str, now: datetime) -> Principal:
        claims = self.session_key.verify(access_token, now=now)
        with self.engine.connect() as conn:
            session = self.sessions.get(conn, claims.session_id)
            account = by_id(conn, claims.user_id)
        if (
            not session.live(now, self.config.timeouts)
            or session.user_id != account.id
            or account.disabled
            or account.role.value != claims.role
        ):
            raise TokenInvalid("the access token is invalid or expired; log in again")
        if self.sessions.needs_touch(session, now):
            with self.writing() as conn:
                self.sessions.touch(conn, session.id, now)
        return Principal(account, session, claims)

    def refresh(self, refresh_token: str, csrf_token: str | None) -> LoginResult:
        now = self.clock.now()
        reused: ReusedRefreshToken | None = None
        with self.writing() as conn:
            session_id = self.sessions.session_of(conn, refresh_token)
            self.session_key.check_csrf(session_id, csrf_token)
            try:
                session, token = self.sessions.rotate(conn, refresh_token, now)
            except ReusedRefreshToken as e:
                reused = e  # committed below: the revocation must stick
            else:
                account = by_id(conn, session.user_id)
        if reused is not None:
            self.forget_checks()
            self._emit(
                EventName.AUTH_REFRESH_REUSED,
                actor=f"user:{reused.user_id}",
                subject=f"session:{reused.session_id}",
            )
            raise reused
        if account.disabled:
            raise TokenInvalid("the session has ended; log in again")
        return self._result(account, session, token, now)

    def logout(self, principal: Principal) -> None:
        with self.writing() as conn:
            self.sessions.revoke(conn, principal.session.id, self.clock.now(), "logout")
        self.forget_checks()
        self._emit(
            EventName.AUTH_LOGOUT, actor=principal.actor, subject=f"session:{principal.session.id}"
        )

    def logout_all(self, principal: Principal) -> int:
        with self.writing() as conn:
            ended = self.sessions.revoke_all(
                conn, principal.account.id, self.clock.now(), "logout_all"
            )
        self.forget_checks()
        self._emit(EventName.AUTH_LOGOUT_ALL, actor=principal.actor, sessions=ended)
        return ended

    def end_session(self, principal: Principal, session_id: str, proof: StepUp, ip: str) -> None:
        """End one of the caller's own sessions (another device), after a fresh proof."""
        self.step_up(principal, proof, ip)
        with self.writing() as conn:
            session = self.sessions.get(conn, session_id)
            if session.user_id != principal.account.id:
                raise NotFound("no such session")
            self.sessions.revoke(conn, session_id, self.clock.now(), "ended_by_user")
        self.forget_checks()
        self._emit(EventName.AUTH_LOGOUT, actor=principal.actor, subject=f"session:{session_id}")

    def live_sessions(self, principal: Principal) -> list[SessionRow]:
        with self.engine.connect() as conn:
            return self.sessions.live_sessions(conn, principal.account.id, self.clock.now())

    def record_trading_address(self, principal: Principal, ip: str) -> None:
        """Count a change to trading (a bot started, a halt, a credential added) from `ip`; the
        first from an address is an `auth.ip.new` event, for anomaly rules."""
        with self.writing() as conn:
            new = addresses.record(conn, principal.account.id, ip, "trade", self.clock.now())
        if new:
            self._emit(EventName.AUTH_NEW_IP, actor=principal.actor, ip=ip, kind="trade")

    def ws_ticket(self, principal: Principal, ip: str) -> Token:
        return self.tokens.issue(
            "ws",
            user_id=principal.account.id,
            ttl=TICKET_TTL_S,
            bound_to=ip,
            session_id=principal.session.id,
        )

    def redeem_ws_ticket(self, ticket: str, ip: str) -> tuple[Account, str]:
        """The account and login session a ticket was issued to; the stream it opens lives
        only as long as that session (`session_still_live`)."""
        redeemed = self.tokens.consume("ws", ticket, bound_to=ip)
        if redeemed.user_id is None or redeemed.session_id is None:
            raise TokenInvalid("the WebSocket ticket is invalid, expired or already used")
        if not self.session_still_live(redeemed.user_id, redeemed.session_id):
            raise TokenInvalid("the WebSocket ticket is invalid, expired or already used")
        return self.account(redeemed.user_id), redeemed.session_id

    def session_still_live(self, user_id: int, session_id: str) -> bool:
        """Whether a session of an enabled account is still live (not ended, idle or past its
        absolute timeout): long-lived channels ask this instead of trusting their start."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            try:
                session = self.sessions.get(conn, session_id)
            except TokenInvalid:
                return False
            account = by_id(conn, user_id)
        return (
            session.user_id == user_id
            and not account.disabled
            and session.live(now, self.config.timeouts)
        )
