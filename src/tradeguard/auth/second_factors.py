"""Second factors: TOTP enrolment and codes (each step once), backup codes (each once),
step-up proofs and full re-authentication."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlalchemy as sa

from tradeguard.auth._core import ServiceCore
from tradeguard.auth.accounts import (
    Account,
    Role,
    by_id,
)
from tradeguard.auth.backup_codes import code_hash, new_backup_codes, normalize
from tradeguard.auth.principals import Enrolment, LoginResult, Principal, StepUp
from tradeguard.auth.totp import new_totp_secret, provisioning_uri, qr_svg, verify_totp
from tradeguard.core.errors import (
    Conflict,
    Forbidden,
    InvalidCode,
    LoginFailed,
    SecondFactorRequired,
)
from tradeguard.core.events import EventName
from tradeguard.secrets import Token
from tradeguard.store.models import BackupCode, User
from tradeguard.vault.second_factor import open_totp_secret, seal_totp_secret

__all__ = ["SecondFactors"]

users = cast(sa.Table, User.__table__)
backup_codes = cast(sa.Table, BackupCode.__table__)

_ISSUER = "tradeguard"


class SecondFactors(ServiceCore):
    def _verify_second_factor(self, account: Account, code: str, ip: str | None) -> None:
        code = code.strip()
        digits = code.replace(" ", "")  # "123 456", as authenticator apps show it
        if len(digits) == 6 and digits.isdigit():
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
        with self.writing() as conn:
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
        with self.writing() as conn:
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
        with self.writing() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == account.id, users.c.totp_enabled_at.is_(None))
                .values(totp_secret=sealed, totp_key_version=version, totp_last_step=None)
            )
        return Enrolment(uri=uri, qr_svg=qr_svg(uri))

    def confirm_totp(self, principal: Principal, code: str) -> tuple[list[Token], LoginResult]:
        """Turn the pending secret on with one valid code: the new backup codes, shown once,
        and a new session in place of the caller's (every earlier session has ended)."""
        with self.engine.connect() as conn:
            account = by_id(conn, principal.account.id)
        if account.totp_enabled:
            raise Conflict("two-factor authentication is already on")
        if account.totp_secret is None:
            raise Conflict("start enrolment first (POST /api/me/2fa)")
        ip = principal.session.ip or ""
        self.throttle.before_check(ip, account.name, known=True)
        secret = open_totp_secret(account.totp_secret, account.id, self.vault.keyring)
        try:
            step = verify_totp(secret, code, at=self.clock.now(), last_step=None)
        except InvalidCode:
            self.throttle.failed(ip, account.name, known=True)
            raise
        finally:
            secret.wipe()
        now = self.clock.now()
        with self.writing() as conn:
            # Only the secret this code was checked against, and only once: a restarted
            # enrolment or a second confirm racing this one changes nothing.
            turned_on = conn.execute(
                users.update()
                .where(
                    users.c.id == account.id,
                    users.c.totp_enabled_at.is_(None),
                    users.c.totp_secret == account.totp_secret,
                )
                .values(totp_enabled_at=now, totp_last_step=step)
            ).rowcount
            if turned_on != 1:
                raise Conflict("the enrolment changed meanwhile; start it again")
            codes = self._replace_backup_codes(conn, account.id, now)
            # A new second factor is a privilege change (an admin gains admin rights with it):
            # every session ends, and the caller goes on in a new one.
            self.sessions.revoke_all(
                conn, account.id, now, "2fa_enabled", keep=principal.session.id
            )
            renewed = self.renew_session(conn, principal, "2fa_enabled")
        self.forget_checks()
        self._emit(EventName.AUTH_SECOND_FACTOR_ENABLED, actor=account.owner)
        return codes, renewed

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
        with self.writing() as conn:
            codes = self._replace_backup_codes(conn, principal.account.id, self.clock.now())
        self._emit(EventName.AUTH_BACKUP_CODES_ISSUED, actor=principal.actor, ip=ip)
        return codes

    def disable_totp(self, principal: Principal, proof: StepUp, ip: str) -> None:
        if principal.account.role is Role.ADMIN:
            raise Forbidden("admins must keep two-factor authentication on")
        if self.config.require_2fa == "everyone":
            raise Forbidden("this installation requires two-factor authentication for everyone")
        self.reauthenticate(principal, proof, ip)
        self._remove_second_factor(principal.account.id, keep_session=principal.session.id)
        self._emit(EventName.AUTH_SECOND_FACTOR_DISABLED, actor=principal.actor, ip=ip)

    def reset_second_factor(self, user_id: int, *, actor: str, reason: str) -> Account:
        """An operator removes a user's second factor (lost authenticator and backup codes),
        after checking who they are by other means: every session ends, an admin has no admin
        rights until they enrol again, and the event names who did it and why."""
        account = self.account(user_id)
        if not account.totp_enabled and account.totp_secret is None:
            raise Conflict(f"{account.name} has no second factor to reset")
        self._remove_second_factor(user_id, keep_session=None)
        self._emit(
            EventName.AUTH_SECOND_FACTOR_DISABLED,
            actor=actor,
            subject=account.owner,
            reason=reason,
        )
        return self.account(user_id)

    def _remove_second_factor(self, user_id: int, *, keep_session: str | None) -> None:
        with self.writing() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == user_id)
                .values(
                    totp_secret=None, totp_key_version=None, totp_enabled_at=None,
                    totp_last_step=None,
                )
            )  # fmt: skip
            conn.execute(backup_codes.delete().where(backup_codes.c.user_id == user_id))
            # Removing a factor ends the other sessions, as adding one does (ASVS V7.4.3).
            self.sessions.revoke_all(
                conn, user_id, self.clock.now(), "2fa_removed", keep=keep_session
            )
        self.forget_checks()

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
