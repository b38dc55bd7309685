"""Passwords: the policy for new ones, changes, reset by mail (queued, so neither the answer
nor its timing tells whether an account exists), and the email address resets go to."""

from __future__ import annotations

import logging
import queue
import threading
from typing import cast

import sqlalchemy as sa

from tradeguard.auth._core import ServiceCore
from tradeguard.auth.accounts import Account, by_id, by_login, check_email
from tradeguard.auth.passwords import check_strength
from tradeguard.auth.principals import LoginResult, Principal, StepUp
from tradeguard.core.errors import (
    AuthError,
    Conflict,
    InvalidCode,
    SecondFactorRequired,
    TokenInvalid,
)
from tradeguard.core.events import EventName
from tradeguard.secrets import Password
from tradeguard.store.models import User

__all__ = ["Recovery"]

log = logging.getLogger(__name__)
users = cast(sa.Table, User.__table__)

RESET_TTL_S = 15 * 60


class Recovery(ServiceCore):
    def check_new_password(self, password: Password, *inputs: str | None) -> None:
        """Length, strength and (when configured) the breach corpus; `WeakPassword` if not."""
        check_strength(
            password, user_inputs=[i for i in inputs if i], min_score=self.config.min_score
        )
        if self.breached is not None:
            self.breached.check(password)

    def change_password(
        self, principal: Principal, current: Password, new: Password, proof: StepUp, ip: str
    ) -> LoginResult:
        """Needs the current password and, with a second factor on, a fresh code too. Every
        session ends and the caller goes on in a new one (returned). The new password is
        judged first and the current one before the code, so neither a weak choice nor a
        typo spends the code."""
        account = principal.account
        if account.password_hash is None:
            raise AuthError("this account has no password to change")
        self.check_new_password(new, account.name, account.email)
        self.reauthenticate(principal, StepUp(code=proof.code, password=current), ip)
        phc = self.hasher.hash(new)  # before the write lock: it takes tens of milliseconds
        with self.writing() as conn:
            self._store_password(conn, account, phc, reason="password_changed")
            renewed = self.renew_session(conn, principal, "password_changed")
        self.forget_checks()
        self._emit(EventName.AUTH_PASSWORD_CHANGED, actor=account.owner, ip=ip)
        return renewed

    def _store_password(
        self, conn: sa.Connection, account: Account, phc: str, *, reason: str
    ) -> None:
        """Store a new password's hash (the caller has checked the password) and end every
        session."""
        now = self.clock.now()
        conn.execute(
            users.update()
            .where(users.c.id == account.id)
            .values(password_hash=phc, password_changed_at=now)
        )
        self.sessions.revoke_all(conn, account.id, now, reason)

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
        with self._reset_lock:  # two first requests at once must not start two workers
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
        phc = self.hasher.hash(new)
        with self.writing() as conn:
            self._store_password(conn, account, phc, reason="password_reset")
        self.forget_checks()
        self._emit(EventName.AUTH_PASSWORD_RESET, actor=account.owner, ip=ip)

    def change_email(self, principal: Principal, email: str, proof: StepUp, ip: str) -> Account:
        """A new address for resets, after a fresh proof; the old address is told nothing
        here (no mail is sent to it) but the change is audited."""
        address = check_email(email)
        self.reauthenticate(principal, proof, ip)
        with self.writing() as conn:
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


_RESET_MAIL = """Someone (hopefully you) asked to reset the password of your tradeguard account.

Open this link within {minutes} minutes to choose a new password:

{link}

If you did not ask for this, ignore this mail: your password stays as it is. If it keeps
happening, tell your tradeguard administrator.
"""
