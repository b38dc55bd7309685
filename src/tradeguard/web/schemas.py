"""Request and response models of the API.

Every request body forbids unknown fields and bounds every string, so a body is validated (and
refused with 422) before any handler runs. Secrets in bodies are `SecretStr`: pydantic never
prints them, and handlers turn them into `tradeguard.secrets` values at once.

Sections: base models (shared), then one section an area. Engineer B's resource models live in
their routers or in a section of their own at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from tradeguard.auth.accounts import Account, Role
from tradeguard.auth.service import StepUp
from tradeguard.auth.sessions import SessionRow
from tradeguard.secrets import Password

__all__ = [
    "AcceptedOut",
    "BackupCodesOut",
    "Body",
    "CodeBody",
    "EmailChangeBody",
    "EnrolmentOut",
    "ErrorDetail",
    "ErrorOut",
    "HealthOut",
    "LoginBody",
    "LogoutAllOut",
    "NewUserBody",
    "OkOut",
    "PasswordChangeBody",
    "ResetConfirmBody",
    "ResetRequestBody",
    "SessionOut",
    "SetupBody",
    "StepUpFields",
    "TokenOut",
    "UserOut",
    "UserPatchBody",
    "WsTicketOut",
    "password_of",
]

# -- base ----------------------------------------------------------------------------------------

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"  # tradeguard.vault.users.check_name
MAX_PASSWORD = 1024  # the password policy's upper bound: longer is refused before hashing
MAX_CODE = 64  # a TOTP code is 6 digits, a backup code about 20 characters


class Body(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped, and text
    must be real Unicode. JSON allows a lone surrogate (`"\\ud800"`), which no database,
    hash or `Secret` can encode: refused here as a 422 naming the field, not a 500 later."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: object) -> object:
        if not _encodable(value):
            raise ValueError("text must be valid Unicode (this holds a lone surrogate)")
        return value


def _encodable(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_encodable(v) for v in value)
    return True


def password_of(value: SecretStr) -> Password:
    """The body's secret as a `Password` (wiped by its owner when done)."""
    return Password(value.get_secret_value())


class StepUpFields(Body):
    """Proof of presence for a sensitive action: a fresh second-factor code (or a backup
    code), or the current password for an account without a second factor."""

    code: str | None = Field(default=None, max_length=MAX_CODE)
    password: SecretStr | None = Field(default=None, max_length=MAX_PASSWORD)

    @contextmanager
    def proof(self) -> Iterator[StepUp]:
        """The proof for the block; its password buffer is wiped when the block ends, however
        it ends."""
        password = None if self.password is None else password_of(self.password)
        try:
            yield StepUp(code=self.code, password=password)
        finally:
            if password is not None:
                password.wipe()


class ErrorDetail(BaseModel):
    code: str = Field(description="The error's class name, or `validation`")
    message: str
    fields: list[dict[str, str]] | None = Field(
        default=None, description="For `validation`: each field's location and what is wrong"
    )


class ErrorOut(BaseModel):
    error: ErrorDetail


class OkOut(BaseModel):
    status: Literal["ok"] = "ok"


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


# -- accounts as the API shows them --------------------------------------------------------------


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    email: str | None
    totp_enabled: bool
    disabled: bool
    vault_mode: str
    created_at: datetime

    @classmethod
    def of(cls, account: Account) -> UserOut:
        return cls(
            id=account.id,
            name=account.name,
            role=account.role,
            email=account.email,
            totp_enabled=account.totp_enabled,
            disabled=account.disabled,
            vault_mode=account.vault_mode,
            created_at=account.created_at,
        )


# -- auth ----------------------------------------------------------------------------------------


class LoginBody(Body):
    login: str = Field(min_length=1, max_length=254, description="User name or email")
    password: SecretStr = Field(min_length=1, max_length=MAX_PASSWORD)
    code: str | None = Field(default=None, max_length=MAX_CODE)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name
    expires_in: int = Field(description="Seconds the access token is valid")
    csrf_token: str = Field(description="Send as X-CSRF-Token with POST /api/auth/refresh")
    user: UserOut


class LogoutAllOut(BaseModel):
    sessions_ended: int


class ResetRequestBody(Body):
    email: str = Field(min_length=1, max_length=254)


class AcceptedOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    message: str


class ResetConfirmBody(Body):
    token: str = Field(min_length=1, max_length=128)
    password: SecretStr = Field(min_length=1, max_length=MAX_PASSWORD)
    code: str | None = Field(default=None, max_length=MAX_CODE)


class SetupBody(Body):
    token: str = Field(min_length=1, max_length=128)
    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    email: str = Field(min_length=1, max_length=254)
    password: SecretStr = Field(min_length=1, max_length=MAX_PASSWORD)


# -- me ------------------------------------------------------------------------------------------


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool

    @classmethod
    def of(cls, session: SessionRow, current_id: str) -> SessionOut:
        return cls(
            id=session.id,
            created_at=session.created_at,
            last_seen_at=session.last_seen_at,
            expires_at=session.expires_at,
            ip=session.ip,
            user_agent=session.user_agent,
            current=session.id == current_id,
        )


class EnrolmentOut(BaseModel):
    otpauth_uri: str = Field(description="Holds the new secret: show it once, never store it")
    qr_svg: str


class CodeBody(Body):
    code: str = Field(min_length=1, max_length=MAX_CODE)


class BackupCodesOut(BaseModel):
    backup_codes: list[str] = Field(description="Shown once; each works once")


class EnrolledOut(TokenOut):
    """Turning a second factor on: the backup codes, and the new session's tokens."""

    backup_codes: list[str] = Field(description="Shown once; each works once")


class PasswordChangeBody(Body):
    current_password: SecretStr = Field(min_length=1, max_length=MAX_PASSWORD)
    new_password: SecretStr = Field(min_length=1, max_length=MAX_PASSWORD)
    code: str | None = Field(default=None, max_length=MAX_CODE)


class EmailChangeBody(StepUpFields):
    email: str = Field(min_length=1, max_length=254)


# -- users (admin) -------------------------------------------------------------------------------


class NewUserBody(Body):
    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    email: str | None = Field(default=None, min_length=1, max_length=254)
    password: SecretStr = Field(min_length=1, max_length=MAX_PASSWORD)
    role: Role


class UserPatchBody(Body):
    role: Role | None = None
    disabled: bool | None = None


# -- WebSocket -----------------------------------------------------------------------------------


class WsTicketOut(BaseModel):
    ticket: str = Field(description="One use, within expires_in seconds, from this address")
    expires_in: int


# -- engineer B's resource models (credentials, bots, orders, risk, audit) go below ------------
