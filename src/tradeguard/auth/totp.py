"""Time-based one-time passwords (RFC 6238) for the second factor: SHA-1, 6 digits, 30 s.

These are the parameters every authenticator app supports. A code is accepted for the current
30-second step and one step either side (clock drift, slow typing), and each step at most once:
the caller stores the step `verify_totp` returns and passes it back as `last_step`, so a code
seen over someone's shoulder cannot be replayed, not even within its own 90 seconds.

The time is a parameter (`at`); nothing here reads the clock. pyotp takes the secret as `str`,
so an immutable copy of it exists for the length of one call. The provisioning URI and its QR
code contain the secret: show them once to the user and never log them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

import pyotp
import segno

from tradeguard.core.errors import InvalidCode
from tradeguard.secrets import Token

__all__ = [
    "DIGITS",
    "PERIOD_SECONDS",
    "WINDOW_STEPS",
    "new_totp_secret",
    "provisioning_uri",
    "qr_svg",
    "verify_totp",
]

DIGITS = 6
PERIOD_SECONDS = 30
WINDOW_STEPS = 1
_SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation for HMAC-SHA-1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BASE32 = re.compile(rb"[A-Z2-7]+=*")
_INVALID = "wrong or expired code"
_MAX_CODE_INPUT = 32  # longer input is not a code someone typed


def new_totp_secret() -> Token:
    """160 random bits, as base32 text (32 characters, no padding), the form apps expect."""
    return Token.adopt(bytearray(base64.b32encode(secrets.token_bytes(_SECRET_BYTES))))


def provisioning_uri(secret: Token, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app scans. It contains the secret."""
    for name, value in (("account", account), ("issuer", issuer)):
        if not value or not value.isprintable() or ":" in value:
            raise ValueError(f"{name} must be non-empty printable text without ':'")
    with secret.reveal_text() as key:
        return _otp(key, DIGITS).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as a QR code in an inline SVG (paths only: no script, no text, no links).

    Dark on an opaque white background, so it scans on a dark page too.
    """
    qr = segno.make_qr(uri, error="m")
    return str(qr.svg_inline(scale=4, border=4, dark="#000", light="#fff"))


def verify_totp(secret: Token, code: str, *, at: datetime, last_step: int | None) -> int:
    """The time step `code` belongs to, if it is valid at `at` and newer than `last_step`.

    Raises `InvalidCode` for a wrong code, anything that is not 6 digits (spaces are ignored),
    and a step already used: a replay looks exactly like a wrong code.
    """
    return _verify(secret, code, at=at, last_step=last_step, digits=DIGITS)


def _verify(secret: Token, code: str, *, at: datetime, last_step: int | None, digits: int) -> int:
    """`verify_totp` for any number of digits (RFC 6238's test vectors have 8)."""
    candidate = _typed_code(code, digits)
    now = _step(at)
    steps = [s for s in range(now - WINDOW_STEPS, now + WINDOW_STEPS + 1) if s >= 0]
    with secret.reveal_text() as key:
        otp = _otp(key, digits)
        expected = [otp.generate_otp(step).encode("ascii") for step in steps]
    # Every candidate is compared, in constant time, whatever matched before it.
    matched = [
        step
        for step, want in zip(steps, expected, strict=True)
        if hmac.compare_digest(want, candidate)
    ]
    fresh = [step for step in matched if last_step is None or step > last_step]
    if not fresh:
        raise InvalidCode(_INVALID)
    return max(fresh)


def _typed_code(code: str, digits: int) -> bytes:
    """The code as ASCII digits, or `InvalidCode`. Only 0-9 count as digits (not other scripts')."""
    if not isinstance(code, str) or len(code) > _MAX_CODE_INPUT:
        raise InvalidCode(_INVALID)
    compact = code.replace(" ", "")
    if not re.fullmatch(f"[0-9]{{{digits}}}", compact, flags=re.ASCII):
        raise InvalidCode(_INVALID)
    return compact.encode("ascii")


def _step(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime (UTC); a naive one is ambiguous")
    return (at - _EPOCH) // timedelta(seconds=PERIOD_SECONDS)


def _otp(key: str, digits: int) -> pyotp.TOTP:
    if not _BASE32.fullmatch(key.encode("ascii", errors="replace")):
        raise ValueError("the TOTP secret is not base32 text; it is corrupt or of another kind")
    return pyotp.TOTP(key, digits=digits, digest=hashlib.sha1, interval=PERIOD_SECONDS)
