"""Accounts as an admin manages them: creation (a vault user and a login together), roles,
disabling, ending a user's sessions, and the first admin through a one-time setup token."""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa

from tradeguard.auth._core import ServiceCore
from tradeguard.auth.accounts import Account, Role, by_id, check_email
from tradeguard.auth.onetime import table as one_time_tokens
from tradeguard.auth.principals import Principal
from tradeguard.core.errors import Conflict, Forbidden, VaultError
from tradeguard.core.events import EventName
from tradeguard.secrets import Password, Token
from tradeguard.store.models import User
from tradeguard.vault.users import VaultMode, check_name

__all__ = ["Administration"]

users = cast(sa.Table, User.__table__)

SETUP_TTL_S = 24 * 3600


class Administration(ServiceCore):
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
        with self.writing() as conn:
            conn.execute(
                users.update()
                .where(users.c.id == info.id)
                .values(role=role.value, email=email, password_hash=phc, password_changed_at=now)
            )
            account = by_id(conn, info.id)
        self._emit(EventName.AUTH_USER_CREATED, actor=actor, subject=account.owner, role=role.value)
        return account

    def set_role(self, admin: Principal, user_id: int, role: Role) -> Account:
        """A privilege change ends every session of that user: they log in again."""
        self._admin(admin)
        now = self.clock.now()
        with self.writing() as conn:
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
        with self.writing() as conn:
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

    def end_sessions_of(self, admin: Principal, user_id: int) -> int:
        """An admin ends every session of a user (a lost laptop, a departure)."""
        self._admin(admin)
        with self.writing() as conn:
            account = by_id(conn, user_id)
            ended = self.sessions.revoke_all(conn, user_id, self.clock.now(), "ended_by_admin")
        self.forget_checks()
        self._emit(
            EventName.AUTH_LOGOUT_ALL, actor=admin.actor, subject=account.owner, sessions=ended
        )
        return ended

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
        exists. Earlier setup tokens stop working. Setup tokens live in the database whatever
        the token store is, so that "earlier ones stop" holds with Redis too."""
        if not self.needs_setup():
            return None
        with self.writing() as conn:
            conn.execute(
                one_time_tokens.update()
                .where(
                    one_time_tokens.c.purpose == "setup", one_time_tokens.c.consumed_at.is_(None)
                )
                .values(consumed_at=self.clock.now())
            )
        return self._setup_tokens.issue("setup", user_id=None, ttl=SETUP_TTL_S)

    def setup_admin(
        self, token: str, name: str, email: str | None, password: Password, ip: str
    ) -> Account:
        self.rates.anonymous_request(ip, "setup")
        if not self.needs_setup():
            raise Conflict("an admin already exists; log in instead")
        self.check_new_password(password, name, email)  # a weak choice burns no token
        self._setup_tokens.consume("setup", token)
        account = self.create_account(name, email, password, Role.ADMIN, actor="setup")
        self._emit(EventName.AUTH_SETUP_TOKEN_USED, actor=account.owner, ip=ip)
        return account
