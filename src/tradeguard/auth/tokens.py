"""Access tokens (JWT, HS256 pinned) and CSRF tokens, both keyed by the session key.

An access token is short-lived and names its login session (`sid`): the API checks the session
on every request, so logging out ends its access tokens at once, not when they expire. Every
registered claim is required (`iss`, `aud`, `sub`, `iat`, `nbf`, `exp`, `jti`); the algorithm
list has one entry, so `alg=none` and RS256/HS256 confusion never reach a signature check.

The session key comes from `TRADEGUARD_SESSION_KEY(_FILE)` or, unset, from
`<data dir>/session.key`, made on first use (0600, 32 random bytes, base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from tradeguard.core.errors import ConfigError, TokenInvalid
from tradeguard.core.permissions import open_private_file, write_fully
from tradeguard.secrets import Secret, Token
from tradeguard.secrets.files import read_secret_file

__all__ = [
    "ALGORITHM",
    "AUDIENCE",
    "AccessClaims",
    "SessionKey",
    "hash_token",
    "load_session_key",
    "new_token",
]

ALGORITHM = "HS256"
AUDIENCE = "tradeguard-api"
ISSUER = "tradeguard"
_REQUIRED = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid", "role"]
_KEY_FILE = "session.key"
_MIN_KEY_BYTES = 32


def new_token() -> Token:
    """256 random bits, URL-safe: refresh, reset, setup tokens and WebSocket tickets."""
    return Token(secrets.token_urlsafe(32))


def hash_token(token: Token | str) -> bytes:
    """How a bearer token is stored: SHA-256 (the token is random, so no slow hash is needed,
    and a database reader cannot use what they read)."""
    if isinstance(token, Token):
        with token.reveal() as view:
            return hashlib.sha256(view).digest()
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: str
    role: str
    issued_at: datetime
    expires_at: datetime
    token_id: str


class SessionKey:
    """The key that signs access and CSRF tokens. Its bytes never leave this object."""

    def __init__(self, key: Secret, *, issuer: str = ISSUER) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ConfigError(
                f"TRADEGUARD_SESSION_KEY: at least {_MIN_KEY_BYTES} bytes; make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        self._key = key
        self.issuer = issuer

    def _bytes(self) -> bytes:
        with self._key.reveal() as view:
            return bytes(view)  # PyJWT wants bytes; it lives for one call

    def issue(self, claims: AccessClaims) -> str:
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": str(claims.user_id),
            "sid": claims.session_id,
            "role": claims.role,
            "iat": int(claims.issued_at.timestamp()),
            "nbf": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "jti": claims.token_id,
        }
        return jwt.encode(payload, self._bytes(), algorithm=ALGORITHM)

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        """The claims of a valid access token; `TokenInvalid` for anything else, one message."""
        if len(token) > 4096:
            raise _invalid()
        try:
            payload = jwt.decode(
                token,
                self._bytes(),
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                # Presence is PyJWT's job; times are checked below against our injectable
                # clock, not the wall clock PyJWT would read.
                options={
                    "require": _REQUIRED,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
            issued, expires = int(payload["iat"]), int(payload["exp"])
            moment = now.timestamp()
            if not (issued <= moment and int(payload["nbf"]) <= moment < expires):
                raise _invalid()
            return AccessClaims(
                user_id=int(payload["sub"]),
                session_id=_text(payload["sid"]),
                role=_text(payload["role"]),
                issued_at=datetime.fromtimestamp(issued, now.tzinfo),
                expires_at=datetime.fromtimestamp(expires, now.tzinfo),
                token_id=_text(payload["jti"]),
            )
        except (jwt.PyJWTError, KeyError, TypeError, ValueError, OverflowError):
            raise _invalid() from None

    def csrf_token(self, session_id: str) -> str:
        """A token bound to one login session: sent back in `X-CSRF-Token` on cookie requests."""
        mac = hmac.new(self._bytes(), b"csrf\x00" + session_id.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def check_csrf(self, session_id: str, presented: str | None) -> None:
        if not presented or not hmac.compare_digest(self.csrf_token(session_id), presented):
            raise TokenInvalid("missing or wrong CSRF token; send the X-CSRF-Token from login")

    def wipe(self) -> None:
        self._key.wipe()


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ValueError("claim")
    return value


def _invalid() -> TokenInvalid:
    return TokenInvalid("the access token is invalid or expired; refresh it or log in again")


def access_lifetime(issued: datetime, seconds: int) -> datetime:
    return issued + timedelta(seconds=seconds)


def load_session_key(configured: Secret | None, data_dir: Path) -> SessionKey:
    """The configured key, or the one in the data dir (made now if missing)."""
    if configured is not None:
        return SessionKey(configured)
    path = data_dir / _KEY_FILE
    if not path.exists():
        try:
            fd = open_private_file(path)
        except FileExistsError:
            pass  # another instance made it first: read theirs
        else:
            try:
                write_fully(fd, base64.urlsafe_b64encode(os.urandom(48)) + b"\n")
            finally:
                os.close(fd)
    return SessionKey(read_secret_file("the session key file", path))
