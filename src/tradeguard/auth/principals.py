"""What the account service takes and answers: its settings, a login's result, the caller
(`Principal`), a proof of presence (`StepUp`), a second-factor enrolment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tradeguard.auth.accounts import (
    Account,
)
from tradeguard.auth.passwords import HashParams
from tradeguard.auth.sessions import SessionRow, Timeouts
from tradeguard.auth.tokens import AccessClaims
from tradeguard.secrets import Password, Token

__all__ = ["AuthConfig", "Enrolment", "LoginResult", "Principal", "StepUp"]


@dataclass(frozen=True)
class AuthConfig:
    access_ttl: int
    timeouts: Timeouts
    hash_params: HashParams
    min_score: int
    public_url: str
    require_2fa: Literal["admins", "everyone"] = "admins"


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
