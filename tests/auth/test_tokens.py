"""Access tokens: only HS256 under our key, every claim present, time from our clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tradeguard.auth.tokens import AUDIENCE, AccessClaims, SessionKey, load_session_key
from tradeguard.core.errors import ConfigError, TokenInvalid
from tradeguard.secrets import Secret

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _key() -> tuple[SessionKey, bytes]:
    raw = secrets.token_bytes(64)
    return SessionKey(Secret(raw)), raw


def _claims(**changes: Any) -> AccessClaims:
    values: dict[str, Any] = {
        "user_id": 7,
        "session_id": "s" * 32,
        "role": "trader",
        "issued_at": NOW,
        "expires_at": NOW + timedelta(minutes=5),
        "token_id": "j" * 32,
    }
    values.update(changes)
    return AccessClaims(**values)


def _payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": "tradeguard",
        "aud": AUDIENCE,
        "sub": "7",
        "sid": "s" * 32,
        "role": "trader",
        "iat": int(NOW.timestamp()),
        "nbf": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=5)).timestamp()),
        "jti": "j" * 32,
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_token_round_trips_with_every_claim() -> None:
    key, _ = _key()
    claims = key.verify(key.issue(_claims()), now=NOW + timedelta(seconds=10))
    assert claims == _claims()


def test_expired_and_not_yet_valid_tokens_are_refused_on_our_clock() -> None:
    key, _ = _key()
    token = key.issue(_claims())
    with pytest.raises(TokenInvalid):
        key.verify(token, now=NOW + timedelta(minutes=5))
    with pytest.raises(TokenInvalid):
        key.verify(token, now=NOW - timedelta(seconds=1))


@pytest.mark.parametrize("missing", ["iat", "exp", "nbf", "aud", "iss", "jti", "sid", "sub"])
def test_a_token_missing_a_claim_is_refused(missing: str) -> None:
    key, raw = _key()
    token = jwt.encode(_payload(**{missing: None}), raw, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        key.verify(token, now=NOW)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("aud", "another-api"), ("iss", "someone-else"), ("sub", "not-a-number")],
)
def test_a_token_for_another_audience_or_issuer_is_refused(claim: str, value: str) -> None:
    key, raw = _key()
    token = jwt.encode(_payload(**{claim: value}), raw, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        key.verify(token, now=NOW)


def test_alg_none_is_refused() -> None:
    key, _ = _key()
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = _b64(json.dumps(_payload()).encode())
    with pytest.raises(TokenInvalid):
        key.verify(f"{header}.{body}.", now=NOW)


def test_another_hmac_algorithm_under_the_right_key_is_refused() -> None:
    key, raw = _key()
    with pytest.raises(TokenInvalid):
        key.verify(jwt.encode(_payload(), raw, algorithm="HS512"), now=NOW)


def test_rs256_signed_with_a_public_key_as_hmac_secret_is_refused() -> None:
    """Algorithm confusion: an RS256 token never verifies, and neither does an HS256 token whose
    HMAC key is an RSA public key (the classic attack on servers that accept both)."""
    key, _ = _key()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_payload(), private, algorithm="RS256")
    with pytest.raises(TokenInvalid):
        key.verify(token, now=NOW)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(_payload()).encode())
    signature = hmac.new(public_pem, f"{forged}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(TokenInvalid):
        key.verify(f"{forged}.{body}.{_b64(signature)}", now=NOW)


def test_a_token_signed_with_another_key_is_refused() -> None:
    key, _ = _key()
    other, _ = _key()
    with pytest.raises(TokenInvalid):
        key.verify(other.issue(_claims()), now=NOW)


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c", "x" * 5000, "é.é.é"])
def test_garbage_is_refused_with_one_message(garbage: str) -> None:
    key, _ = _key()
    with pytest.raises(TokenInvalid, match="access token is invalid or expired"):
        key.verify(garbage, now=NOW)


def test_csrf_tokens_are_bound_to_their_session() -> None:
    key, _ = _key()
    token = key.csrf_token("a" * 32)
    key.check_csrf("a" * 32, token)
    for presented in (None, "", key.csrf_token("b" * 32), token[:-1]):
        with pytest.raises(TokenInvalid, match="CSRF"):
            key.check_csrf("a" * 32, presented)


def test_a_short_session_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        SessionKey(Secret(b"k" * 31))


def test_the_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    first = load_session_key(None, tmp_path)
    path = tmp_path / "session.key"
    assert path.stat().st_mode & 0o777 == 0o600
    second = load_session_key(None, tmp_path)
    token = first.issue(_claims())
    assert second.verify(token, now=NOW).user_id == 7
