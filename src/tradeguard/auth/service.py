"""The account service: every login, session, second-factor and password decision.

Routes ask this service and stay short. Its policy has one shape throughout: throttles first
(no password is hashed for a throttled attempt), then the secret, then a recorded outcome (an
audit event, a throttle hit). A wrong name, a wrong password and a disabled account give the
same error, and an unknown name costs the same hashing work as a known one.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn, cast

import sqlalchemy as sa

from tradeguard.auth import addresses
from tradeguard.auth.accounts import (
    Account,
    Role,
    by_id,
    by_login,
    check_email,
)
from tradeguard.auth.backup_codes import code_hash, new_backup_codes, normalize
from tradeguard.auth.breached import BreachedPasswords
from tradeguard.auth.mail import Mailer
from tradeguard.auth.onetime import OneTimeTokens
from tradeguard.auth.onetime import table as one_time_tokens
from tradeguard.auth.passwords import HashParams, PasswordHasher, check_strength
from tradeguard.auth.sessions import ReusedRefreshToken, SessionRow, SessionStore, Timeouts
from tradeguard.auth.throttle import LoginThrottle, RateLimits
from tradeguard.auth.tokens import AccessClaims, SessionKey, access_lifetime
from tradeguard.auth.totp import new_totp_secret, provisioning_uri, qr_svg, verify_totp
from tradeguard.core.clock import Clock
from tradeguard.core.errors import (
    AuthError,
    Conflict,
    Forbidden,
    InvalidCode,
    LoginFailed,
    NotFound,
    SecondFactorRequired,
    TokenInvalid,
    VaultError,
)
from tradeguard.core.events import Detail, DomainEvent, EventName, EventSink
from tradeguard.secrets import Password, Token
from tradeguard.store.models import BackupCode, User
from tradeguard.vault import Vault
from tradeguard.vault.second_factor import open_totp_secret, seal_totp_secret
from tradeguard.vault.users import VaultMode, check_name

__all__ = [
    "AccountService",
    "AuthConfig",
    "Enrolment",
    "LoginResult",
    "Principal",
    "StepUp",
]

log = logging.getLogger(__name__)
users = cast(sa.Table, User.__table__)
backup_codes = cast(sa.Table, BackupCode.__table__)

RESET_TTL_S = 15 * 60
TICKET_TTL_S = 30
SETUP_TTL_S = 24 * 3600
_ISSUER = "tradeguard"
# How long a checked access token is taken on trust before its session and account are read
# again. Changes made through this process take effect at once (the cache is dropped); this
# bounds how late another instance sees a logout or a disabled account.
PRINCIPAL_RECHECK_S = 2.0
_PRINCIPAL_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class AuthConfig:
    access_ttl: int
    timeouts: Timeouts
    hash_params: HashParams
    min_score: int
    public_url: str


@dataclass(frozen=True)
class LoginResult:
    account: Account
    session: SessionRow
    access_token: str
    access_expires_at: datetime
    refresh_token: Token
    csrf_token: str


@dataclass(frozen=True)
class Principal:
    """Who is asking: a live session of an enabled account."""

    account: Account
    session: SessionRow
    claims: AccessClaims

    @property
    def actor(self) -> str:
        return self.account.owner


@dataclass(frozen=True)
class StepUp:
    """Proof of presence for a sensitive action: a fresh second-factor code when the account
    has one, else the current password."""

    code: str | None = None
    password: Password | None = None


@dataclass(frozen=True)
class Enrolment:
    uri: str  # otpauth://, holds the secret: shown once, never logged
    qr_svg: str


class AccountService:
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
        self._principals: dict[str, tuple[Principal, float]] = {}
        self._resets: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=1000)
        self._reset_worker: threading.Thread | None = None

    # -- events --------------------------------------------------------------------------------

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

    # -- accounts ------------------------------------------------------------------------------

    def check_new_password(self, password: Password, *inputs: str | None) -> None:
        """Length, strength and (when configured) the breach corpus; `WeakPassword` if not."""
        check_strength(
            password, user_inputs=[i for i in inputs if i], min_score=self.config.min_score
        )
        if self.breached is not None:
            self.breached.check(password)

    def create_account(
        self,
        name: str,
        email: str | None,
        password: Password,
        role: Role,
        *,
        actor: str,
        vault_password: Password | None = None,
    ) -> Account:
        """A user with a login: a vault user (service mode, or password mode when a vault
        password is given) and the login columns, written together."""
        check_name(name)
        email = check_email(email) if email is not None else None
        self.check_new_password(password, name, email)
        phc = self.hasher.hash(password)
        with self.engine.connect() as conn:
            if email and conn.execute(sa.select(users.c.id).where(users.c.email == email)).first():
                raise Conflict("that email address is taken; use another or reset its password")
        mode: VaultMode = "password" if vault_password is not None else "service"
        try:
            info = self.vault.add_user(name, mode, vault_password)
        except VaultError as e:
            raise Conflict(e.message) from None
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == info.id)
                .values(role=role.value, email=email, password_hash=phc, password_changed_at=now)
            )
            account = by_id(conn, info.id)
        self._emit(EventName.AUTH_USER_CREATED, actor=actor, subject=account.owner, role=role.value)
        return account

    def account(self, user_id: int) -> Account:
        with self.engine.connect() as conn:
            return by_id(conn, user_id)

    def accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(users.c.id).order_by(users.c.id)).scalars().all()
            return [by_id(conn, i) for i in ids]

    def set_role(self, admin: Principal, user_id: int, role: Role) -> Account:
        """A privilege change ends every session of that user: they log in again."""
        self._admin(admin)
        now = self.clock.now()
        with self.engine.begin() as conn:
            before = by_id(conn, user_id)
            if before.id == admin.account.id and role is not Role.ADMIN:
                raise Conflict("an admin cannot demote themselves; ask another admin")
            conn.execute(users.update().where(users.c.id == user_id).values(role=role.value))
            self.sessions.revoke_all(conn, user_id, now, "role_changed")
            account = by_id(conn, user_id)
        self.forget_checks()
        self._emit(
            EventName.AUTH_ROLE_CHANGED,
            actor=admin.actor,
            subject=account.owner,
            role=role.value,
            previous=before.role.value,
        )
        return account

    def set_disabled(self, admin: Principal, user_id: int, disabled: bool) -> Account:
        self._admin(admin)
        now = self.clock.now()
        with self.engine.begin() as conn:
            if user_id == admin.account.id:
                raise Conflict("an admin cannot disable themselves; ask another admin")
            by_id(conn, user_id)
            conn.execute(
                users.update()
                .where(users.c.id == user_id)
                .values(disabled_at=now if disabled else None)
            )
            if disabled:
                self.sessions.revoke_all(conn, user_id, now, "disabled")
            account = by_id(conn, user_id)
        self.forget_checks()
        name = EventName.AUTH_USER_DISABLED if disabled else EventName.AUTH_USER_ENABLED
        self._emit(name, actor=admin.actor, subject=account.owner)
        return account

    def _admin(self, principal: Principal) -> None:
        if principal.account.role is not Role.ADMIN:
            raise Forbidden("only an admin may do that")
        if not principal.account.totp_enabled:
            raise Forbidden("admins must turn on two-factor authentication first (/api/me/2fa)")

    # -- login ---------------------------------------------------------------------------------

    def login(
        self,
        login: str,
        password: Password,
        *,
        code: str | None,
        ip: str,
        user_agent: str | None,
    ) -> LoginResult:
        with self.engine.connect() as conn:
            account = by_login(conn, login)
            known = account is not None and addresses.is_known(conn, account.id, ip)
        self.throttle.before_check(ip, login, known=known)
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
                    self.throttle.failed(ip, login, known=known)
                    raise
            self._rehash_if_needed(account, password)
        self.throttle.succeeded(ip, login)
        return self._start_session(account, ip, user_agent)

    def _login_failed(
        self, ip: str, login: str, known: bool, account: Account | None, reason: str
    ) -> NoReturn:
        self.throttle.failed(ip, login, known=known)
        self._emit(
            EventName.AUTH_LOGIN_FAILED,
            actor=None,
            subject=account.owner if account else None,
            ip=ip,
            reason=reason,
        )
        raise LoginFailed("wrong name or password")

    def _rehash_if_needed(self, account: Account, password: Password) -> None:
        if account.password_hash and self.hasher.needs_rehash(account.password_hash):
            phc = self.hasher.hash(password)
            with self.engine.begin() as conn:
                conn.execute(
                    users.update().where(users.c.id == account.id).values(password_hash=phc)
                )

    def _start_session(self, account: Account, ip: str, user_agent: str | None) -> LoginResult:
        now = self.clock.now()
        with self.engine.begin() as conn:
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
            with self.engine.begin() as conn:
                self.sessions.touch(conn, session.id, now)
        return Principal(account, session, claims)

    def forget_checks(self) -> None:
        """Drop every remembered principal: a session ended or an account changed."""
        self._principals.clear()

    def refresh(self, refresh_token: str, csrf_token: str | None) -> LoginResult:
        now = self.clock.now()
        reused: ReusedRefreshToken | None = None
        with self.engine.begin() as conn:
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
        with self.engine.begin() as conn:
            self.sessions.revoke(conn, principal.session.id, self.clock.now(), "logout")
        self.forget_checks()
        self._emit(
            EventName.AUTH_LOGOUT, actor=principal.actor, subject=f"session:{principal.session.id}"
        )

    def logout_all(self, principal: Principal) -> int:
        with self.engine.begin() as conn:
            ended = self.sessions.revoke_all(
                conn, principal.account.id, self.clock.now(), "logout_all"
            )
        self.forget_checks()
        self._emit(EventName.AUTH_LOGOUT_ALL, actor=principal.actor, sessions=ended)
        return ended

    def end_session(self, principal: Principal, session_id: str, proof: StepUp, ip: str) -> None:
        """End one of the caller's own sessions (another device), after a fresh proof."""
        self.step_up(principal, proof, ip)
        with self.engine.begin() as conn:
            session = self.sessions.get(conn, session_id)
            if session.user_id != principal.account.id:
                raise NotFound("no such session")
            self.sessions.revoke(conn, session_id, self.clock.now(), "ended_by_user")
        self.forget_checks()
        self._emit(EventName.AUTH_LOGOUT, actor=principal.actor, subject=f"session:{session_id}")

    def end_sessions_of(self, admin: Principal, user_id: int) -> int:
        """An admin ends every session of a user (a lost laptop, a departure)."""
        self._admin(admin)
        with self.engine.begin() as conn:
            account = by_id(conn, user_id)
            ended = self.sessions.revoke_all(conn, user_id, self.clock.now(), "ended_by_admin")
        self.forget_checks()
        self._emit(
            EventName.AUTH_LOGOUT_ALL, actor=admin.actor, subject=account.owner, sessions=ended
        )
        return ended

    def change_email(self, principal: Principal, email: str, proof: StepUp, ip: str) -> Account:
        """A new address for resets, after a fresh proof; the old address is told nothing
        here (no mail is sent to it) but the change is audited."""
        address = check_email(email)
        self.reauthenticate(principal, proof, ip)
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.select(users.c.id).where(
                    users.c.email == address, users.c.id != principal.account.id
                )
            ).first()
            if taken:
                raise Conflict("that email address is taken; use another")
            conn.execute(
                users.update().where(users.c.id == principal.account.id).values(email=address)
            )
            account = by_id(conn, principal.account.id)
        self.tokens.revoke_user("reset", account.id)  # links sent to the old address die
        self.forget_checks()
        self._emit(EventName.AUTH_EMAIL_CHANGED, actor=principal.actor, ip=ip)
        return account

    def live_sessions(self, principal: Principal) -> list[SessionRow]:
        with self.engine.connect() as conn:
            return self.sessions.live_sessions(conn, principal.account.id, self.clock.now())

    # -- second factor -------------------------------------------------------------------------

    def _verify_second_factor(self, account: Account, code: str, ip: str | None) -> None:
        code = code.strip()
        if len(code) == 6 and code.isdigit():
            self._verify_totp(account, code)
        else:
            self._burn_backup_code(account, code, ip)

    def _verify_totp(self, account: Account, code: str) -> None:
        if not account.totp_enabled or account.totp_secret is None:
            raise InvalidCode("wrong or expired code")
        secret = open_totp_secret(account.totp_secret, account.id, self.vault.keyring)
        try:
            step = verify_totp(secret, code, at=self.clock.now(), last_step=account.totp_last_step)
        finally:
            secret.wipe()
        self._take_step(account.id, step)

    def _take_step(self, user_id: int, step: int) -> None:
        # Conditional: of two requests racing with one code, only one moves the step on.
        with self.engine.begin() as conn:
            taken = conn.execute(
                users.update()
                .where(
                    users.c.id == user_id,
                    sa.or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step),
                )
                .values(totp_last_step=step)
            ).rowcount
        if taken != 1:
            raise InvalidCode("wrong or expired code")

    def _burn_backup_code(self, account: Account, code: str, ip: str | None) -> None:
        digest = code_hash(normalize(code))
        now = self.clock.now()
        with self.engine.begin() as conn:
            burned = conn.execute(
                backup_codes.update()
                .where(
                    backup_codes.c.user_id == account.id,
                    backup_codes.c.code_hash == digest,
                    backup_codes.c.used_at.is_(None),
                )
                .values(used_at=now)
            ).rowcount
            left = conn.execute(
                sa.select(sa.func.count()).where(
                    backup_codes.c.user_id == account.id, backup_codes.c.used_at.is_(None)
                )
            ).scalar_one()
        if burned != 1:
            raise InvalidCode("wrong or expired code")
        self._emit(EventName.AUTH_BACKUP_CODE_USED, actor=account.owner, ip=ip, left=int(left))

    def begin_totp(self, principal: Principal, proof: StepUp, ip: str) -> Enrolment:
        """A new secret, stored but not yet active: `confirm_totp` with one valid code turns it
        on. Starting again replaces a pending secret, never an active one. Needs the password:
        a stolen session must not be able to put the thief's authenticator on the account."""
        self.reauthenticate(principal, proof, ip)
        account = principal.account
        if account.totp_enabled:
            raise Conflict("two-factor authentication is already on; turn it off first")
        secret = new_totp_secret()
        try:
            sealed, version = seal_totp_secret(secret, account.id, self.vault.keyring)
            uri = provisioning_uri(secret, account=account.name, issuer=_ISSUER)
        finally:
            secret.wipe()
        with self.engine.begin() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == account.id, users.c.totp_enabled_at.is_(None))
                .values(totp_secret=sealed, totp_key_version=version, totp_last_step=None)
            )
        return Enrolment(uri=uri, qr_svg=qr_svg(uri))

    def confirm_totp(self, principal: Principal, code: str) -> list[Token]:
        """Turn the pending secret on with one valid code; the new backup codes, shown once."""
        with self.engine.connect() as conn:
            account = by_id(conn, principal.account.id)
        if account.totp_enabled:
            raise Conflict("two-factor authentication is already on")
        if account.totp_secret is None:
            raise Conflict("start enrolment first (POST /api/me/2fa)")
        secret = open_totp_secret(account.totp_secret, account.id, self.vault.keyring)
        try:
            step = verify_totp(secret, code, at=self.clock.now(), last_step=None)
        finally:
            secret.wipe()
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == account.id)
                .values(totp_enabled_at=now, totp_last_step=step)
            )
            codes = self._replace_backup_codes(conn, account.id, now)
            # A new second factor is a privilege change: other sessions log in again with it.
            self.sessions.revoke_all(
                conn, account.id, now, "2fa_enabled", keep=principal.session.id
            )
        self.forget_checks()
        self._emit(EventName.AUTH_SECOND_FACTOR_ENABLED, actor=account.owner)
        return codes

    def _replace_backup_codes(
        self, conn: sa.Connection, user_id: int, now: datetime
    ) -> list[Token]:
        conn.execute(backup_codes.delete().where(backup_codes.c.user_id == user_id))
        codes = new_backup_codes()
        for code in codes:
            with code.reveal_text() as text:
                digest = code_hash(normalize(text))
            conn.execute(
                backup_codes.insert().values(user_id=user_id, code_hash=digest, created_at=now)
            )
        return codes

    def regenerate_backup_codes(self, principal: Principal, proof: StepUp, ip: str) -> list[Token]:
        self.reauthenticate(principal, proof, ip)
        if not principal.account.totp_enabled:
            raise Conflict("backup codes come with two-factor authentication; turn it on first")
        with self.engine.begin() as conn:
            codes = self._replace_backup_codes(conn, principal.account.id, self.clock.now())
        self._emit(EventName.AUTH_BACKUP_CODES_ISSUED, actor=principal.actor, ip=ip)
        return codes

    def disable_totp(self, principal: Principal, proof: StepUp, ip: str) -> None:
        if principal.account.role is Role.ADMIN:
            raise Forbidden("admins must keep two-factor authentication on")
        self.reauthenticate(principal, proof, ip)
        with self.engine.begin() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == principal.account.id)
                .values(
                    totp_secret=None, totp_key_version=None, totp_enabled_at=None,
                    totp_last_step=None,
                )
            )  # fmt: skip
            conn.execute(
                backup_codes.delete().where(backup_codes.c.user_id == principal.account.id)
            )
            # Removing a factor ends the other sessions, as adding one does (ASVS V7.4.3).
            self.sessions.revoke_all(
                conn, principal.account.id, self.clock.now(), "2fa_disabled",
                keep=principal.session.id,
            )  # fmt: skip
        self.forget_checks()
        self._emit(EventName.AUTH_SECOND_FACTOR_DISABLED, actor=principal.actor, ip=ip)

    def step_up(
        self, principal: Principal, proof: StepUp, ip: str, *, password_only: bool = False
    ) -> None:
        """Raise unless `proof` is fresh: a code never used before when the account has a
        second factor, else the current password (`password_only`: the password whatever
        the account has). Throttled like a login."""
        with self.engine.connect() as conn:
            account = by_id(conn, principal.account.id)  # the current last step
        login = account.name
        self.throttle.before_check(ip, login, known=True)
        try:
            if account.totp_enabled and not password_only:
                if not proof.code:
                    raise SecondFactorRequired(
                        "this action needs a fresh code from the authenticator app (or a "
                        "backup code) as `code`"
                    )
                self._verify_second_factor(account, proof.code, ip)
            else:
                if proof.password is None or account.password_hash is None:
                    raise SecondFactorRequired("this action needs your current `password`")
                self.hasher.verify(account.password_hash, proof.password)
        except (InvalidCode, LoginFailed):
            self.throttle.failed(ip, login, known=True)
            self._emit(EventName.AUTH_SECOND_FACTOR_FAILED, actor=account.owner, ip=ip)
            raise InvalidCode("the code or password is wrong") from None

    def reauthenticate(self, principal: Principal, proof: StepUp, ip: str) -> None:
        """Full re-authentication for changes to how the account is secured (password, email,
        second factor, backup codes): the current password always, and a fresh code as well
        when a second factor is on. The password is checked first, so a typo spends no code."""
        self.step_up(principal, StepUp(password=proof.password), ip, password_only=True)
        if self.account(principal.account.id).totp_enabled:
            self.step_up(principal, StepUp(code=proof.code), ip)

    # -- passwords -----------------------------------------------------------------------------

    def change_password(
        self, principal: Principal, current: Password, new: Password, proof: StepUp, ip: str
    ) -> None:
        """Needs the current password and, with a second factor on, a fresh code too. Every
        other session ends. The new password is judged first and the current one before the
        code, so neither a weak choice nor a typo spends the code."""
        account = principal.account
        if account.password_hash is None:
            raise AuthError("this account has no password to change")
        self.check_new_password(new, account.name, account.email)
        self.reauthenticate(principal, StepUp(code=proof.code, password=current), ip)
        self._set_password(
            account, new, keep_session=principal.session.id, reason="password_changed"
        )
        self._emit(EventName.AUTH_PASSWORD_CHANGED, actor=account.owner, ip=ip)

    def _set_password(
        self, account: Account, new: Password, *, keep_session: str | None, reason: str
    ) -> None:
        """Store a new password (the caller has checked it) and end the other sessions."""
        phc = self.hasher.hash(new)
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == account.id)
                .values(password_hash=phc, password_changed_at=now)
            )
            self.sessions.revoke_all(conn, account.id, now, reason, keep=keep_session)
        self.forget_checks()

    def request_reset(self, email: str, ip: str) -> None:
        """Queue a reset mail. Returns at once whatever the address, so neither the answer nor
        its timing says whether an account has it; the worker does the rest."""
        self.rates.anonymous_request(ip, "reset")
        try:
            address = check_email(email)
        except AuthError:
            return  # answered like any other address
        self._start_reset_worker()
        try:
            self._resets.put_nowait((address, ip))
        except queue.Full:
            log.warning("password reset queue full; a reset request was dropped")

    def _start_reset_worker(self) -> None:
        if self._reset_worker is None or not self._reset_worker.is_alive():
            self._reset_worker = threading.Thread(
                target=self._run_resets, name="tradeguard-reset-mail", daemon=True
            )
            self._reset_worker.start()

    def _run_resets(self) -> None:
        while (item := self._resets.get()) is not None:
            try:
                self._send_reset(*item)
            except Exception:
                log.exception("a password reset mail could not be sent")
            finally:
                self._resets.task_done()
        self._resets.task_done()

    def _send_reset(self, email: str, ip: str) -> None:
        with self.engine.connect() as conn:
            account = by_login(conn, email)
        if account is None or not account.can_log_in:
            return
        self.tokens.revoke_user("reset", account.id)  # only the newest link works
        token = self.tokens.issue("reset", user_id=account.id, ttl=RESET_TTL_S)
        self._emit(
            EventName.AUTH_PASSWORD_RESET_REQUESTED, actor=None, subject=account.owner, ip=ip
        )
        if self.mailer is None:
            log.warning("a password reset was asked for but no SMTP server is configured")
            return
        with token.reveal_text() as text:
            link = f"{self.config.public_url}/reset#token={text}"
            body = _RESET_MAIL.format(link=link, minutes=RESET_TTL_S // 60)
        self.mailer.send(email, "Reset your tradeguard password", body)

    def wait_for_mail(self) -> None:
        """Block until queued reset mails are handled (tests; shutdown)."""
        self._resets.join()

    def confirm_reset(self, token: str, new: Password, code: str | None, ip: str) -> None:
        """Set a new password with a reset token. With a second factor on, a code is needed as
        well: a mailbox alone does not open the account. Every session ends."""
        self.rates.anonymous_request(ip, "reset-confirm")
        user_id = self.tokens.peek("reset", token).user_id
        if user_id is None:
            raise TokenInvalid("the reset link is invalid, expired or already used")
        account = self.account(user_id)
        self.check_new_password(new, account.name, account.email)
        if account.totp_enabled:
            if not code:
                raise SecondFactorRequired(
                    "this account uses two-factor authentication: send a code (or a backup "
                    "code) as `code` with the new password"
                )
            self.throttle.before_check(ip, account.name, known=False)
            try:
                self._verify_second_factor(account, code, ip)
            except InvalidCode:
                self.throttle.failed(ip, account.name, known=False)
                raise
        self.tokens.consume("reset", token)  # the atomic step: of two racers one gets here
        self._set_password(account, new, keep_session=None, reason="password_reset")
        self._emit(EventName.AUTH_PASSWORD_RESET, actor=account.owner, ip=ip)

    # -- WebSocket tickets and first-admin setup ------------------------------------------------

    def ws_ticket(self, principal: Principal, ip: str) -> Token:
        return self.tokens.issue("ws", user_id=principal.account.id, ttl=TICKET_TTL_S, bound_to=ip)

    def redeem_ws_ticket(self, ticket: str, ip: str) -> Account:
        redeemed = self.tokens.consume("ws", ticket, bound_to=ip)
        if redeemed.user_id is None:
            raise TokenInvalid("the WebSocket ticket is invalid, expired or already used")
        account = self.account(redeemed.user_id)
        if account.disabled:
            raise TokenInvalid("the WebSocket ticket is invalid, expired or already used")
        return account

    def needs_setup(self) -> bool:
        """No admin who can log in exists yet."""
        with self.engine.connect() as conn:
            admin = conn.execute(
                sa.select(users.c.id).where(
                    users.c.role == Role.ADMIN.value, users.c.password_hash.is_not(None)
                )
            ).first()
        return admin is None

    def setup_token(self) -> Token | None:
        """A one-time token for creating the first admin over the API, or None when one
        exists. Earlier setup tokens stop working."""
        if not self.needs_setup():
            return None
        with self.engine.begin() as conn:
            conn.execute(
                one_time_tokens.update()
                .where(
                    one_time_tokens.c.purpose == "setup", one_time_tokens.c.consumed_at.is_(None)
                )
                .values(consumed_at=self.clock.now())
            )
        return self.tokens.issue("setup", user_id=None, ttl=SETUP_TTL_S)

    def setup_admin(
        self, token: str, name: str, email: str | None, password: Password, ip: str
    ) -> Account:
        self.rates.anonymous_request(ip, "setup")
        if not self.needs_setup():
            raise Conflict("an admin already exists; log in instead")
        self.check_new_password(password, name, email)
        self.tokens.consume("setup", token)
        account = self.create_account(name, email, password, Role.ADMIN, actor="setup")
        self._emit(EventName.AUTH_SETUP_TOKEN_USED, actor=account.owner, ip=ip)
        return account

    def close(self) -> None:
        if self._reset_worker is not None and self._reset_worker.is_alive():
            self._resets.put(None)
            self._reset_worker.join(timeout=15)


_RESET_MAIL = """Someone (hopefully you) asked to reset the password of your tradeguard account.

Open this link within {minutes} minutes to choose a new password:

{link}

If you did not ask for this, ignore this mail: your password stays as it is. If it keeps
happening, tell your tradeguard administrator.
"""
