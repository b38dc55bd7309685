"""TOTP: RFC 6238's SHA-1 vectors through the real verification path, the +-1 step window,
replay refusal, garbage refusal, the provisioning URI and the QR code's SVG."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tradeguard.auth import totp
from tradeguard.auth.totp import new_totp_secret, provisioning_uri, qr_svg, verify_totp
from tradeguard.core.errors import InvalidCode
from tradeguard.secrets import Token

RFC_SEED = b"12345678901234567890"  # RFC 6238 Appendix B, the SHA-1 seed
# (Unix time, 8-digit TOTP) from RFC 6238 Appendix B, SHA-1 column
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
AT = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
STEP = int(AT.timestamp()) // 30


def _hotp(secret: Token, counter: int, digits: int = 6) -> str:
    """RFC 4226 written out here, independent of pyotp, to produce codes for the tests."""
    with secret.reveal() as view:
        key = base64.b32decode(view.tobytes())
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


@pytest.fixture
def secret() -> Token:
    return new_totp_secret()


@pytest.mark.parametrize(("unix", "code"), RFC_VECTORS)
def test_rfc6238_sha1_vectors(unix: int, code: str) -> None:
    seed = Token(base64.b32encode(RFC_SEED))
    at = datetime.fromtimestamp(unix, UTC)
    assert totp._verify(seed, code, at=at, last_step=None, digits=8) == unix // 30


def test_the_rfc_seed_gives_the_vectors_last_six_digits_at_six_digits() -> None:
    seed = Token(base64.b32encode(RFC_SEED))
    for unix, code in RFC_VECTORS:
        at = datetime.fromtimestamp(unix, UTC)
        assert verify_totp(seed, code[-6:], at=at, last_step=None) == unix // 30


def test_a_new_secret_is_160_random_bits_in_base32() -> None:
    first, second = new_totp_secret(), new_totp_secret()
    assert isinstance(first, Token)
    with first.reveal() as view:
        text = view.tobytes()
    assert len(text) == 32
    assert len(base64.b32decode(text)) == 20
    assert first != second
    assert "***" in repr(first)


def test_the_current_code_is_accepted_and_its_step_returned(secret: Token) -> None:
    assert verify_totp(secret, _hotp(secret, STEP), at=AT, last_step=None) == STEP


def test_one_step_either_side_is_accepted(secret: Token) -> None:
    assert verify_totp(secret, _hotp(secret, STEP - 1), at=AT, last_step=None) == STEP - 1
    assert verify_totp(secret, _hotp(secret, STEP + 1), at=AT, last_step=None) == STEP + 1


def test_the_window_follows_the_time_passed_in(secret: Token) -> None:
    code = _hotp(secret, STEP)
    start = datetime.fromtimestamp(STEP * 30, UTC)
    for seconds in (-30, -1, 0, 29, 30, 59):
        assert verify_totp(secret, code, at=start + timedelta(seconds=seconds), last_step=None)
    for seconds in (-31, 60, 3600):
        with pytest.raises(InvalidCode):
            verify_totp(secret, code, at=start + timedelta(seconds=seconds), last_step=None)


@pytest.mark.parametrize("offset", [-2, 2, -10, 10])
def test_two_or_more_steps_away_is_refused(secret: Token, offset: int) -> None:
    with pytest.raises(InvalidCode, match=r"^wrong or expired code$"):
        verify_totp(secret, _hotp(secret, STEP + offset), at=AT, last_step=None)


def test_a_wrong_code_is_refused(secret: Token) -> None:
    window = {_hotp(secret, STEP + d) for d in (-1, 0, 1)}
    wrong = next(c for c in (f"{n:06d}" for n in range(10)) if c not in window)
    with pytest.raises(InvalidCode, match=r"^wrong or expired code$"):
        verify_totp(secret, wrong, at=AT, last_step=None)


def test_a_replayed_code_is_refused_like_a_wrong_one(secret: Token) -> None:
    code = _hotp(secret, STEP)
    step = verify_totp(secret, code, at=AT, last_step=None)
    with pytest.raises(InvalidCode) as replay:
        verify_totp(secret, code, at=AT, last_step=step)
    assert replay.value.message == "wrong or expired code"
    # later in the same window, still refused
    with pytest.raises(InvalidCode):
        verify_totp(secret, code, at=AT + timedelta(seconds=25), last_step=step)


def test_an_older_step_than_the_last_used_is_refused(secret: Token) -> None:
    with pytest.raises(InvalidCode):
        verify_totp(secret, _hotp(secret, STEP - 1), at=AT, last_step=STEP)
    with pytest.raises(InvalidCode):
        verify_totp(secret, _hotp(secret, STEP), at=AT, last_step=STEP + 1)


def test_a_newer_step_than_the_last_used_is_accepted(secret: Token) -> None:
    assert verify_totp(secret, _hotp(secret, STEP + 1), at=AT, last_step=STEP) == STEP + 1
    assert verify_totp(secret, _hotp(secret, STEP), at=AT, last_step=STEP - 1) == STEP


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "12345",
        "1234567",
        "abcdef",
        "12345a",
        "+12345",
        "-12345",
        "12.345",
        "١٢٣٤٥٦",  # Arabic-Indic digits are digits to str.isdigit, not to us
        "１２３４５６",  # full-width digits  # noqa: RUF001
        "123456\n",
        "1" * 10_000,
    ],
)
def test_garbage_is_refused(secret: Token, garbage: str) -> None:
    with pytest.raises(InvalidCode, match=r"^wrong or expired code$"):
        verify_totp(secret, garbage, at=AT, last_step=None)


def test_a_non_string_is_refused(secret: Token) -> None:
    with pytest.raises(InvalidCode):
        verify_totp(secret, 123456, at=AT, last_step=None)  # type: ignore[arg-type]


def test_spaces_in_a_typed_code_are_ignored(secret: Token) -> None:
    code = _hotp(secret, STEP)
    assert verify_totp(secret, f" {code[:3]} {code[3:]} ", at=AT, last_step=None) == STEP


def test_a_naive_time_is_refused(secret: Token) -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        verify_totp(secret, "123456", at=datetime(2026, 1, 1), last_step=None)


def test_near_the_epoch_there_is_no_negative_step(secret: Token) -> None:
    at = datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert verify_totp(secret, _hotp(secret, 0), at=at, last_step=None) == 0


def test_a_secret_that_is_not_base32_is_refused(secret: Token) -> None:
    with pytest.raises(ValueError, match="not base32"):
        verify_totp(Token("not base32 at all!"), "123456", at=AT, last_step=None)


# -- enrolment -------------------------------------------------------------------------------


def test_the_provisioning_uri_names_issuer_account_and_secret(secret: Token) -> None:
    uri = provisioning_uri(secret, account="alice", issuer="tradeguard")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/tradeguard:alice"
    query = parse_qs(parts.query)
    with secret.reveal_text() as text:
        assert query["secret"] == [text]
    assert query["issuer"] == ["tradeguard"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]


def test_names_are_quoted_in_the_uri(secret: Token) -> None:
    uri = provisioning_uri(secret, account="alice smith@example.com", issuer="trade guard")
    assert " " not in uri
    assert unquote(urlsplit(uri).path) == "/trade guard:alice smith@example.com"


@pytest.mark.parametrize(
    ("account", "issuer"), [("", "tradeguard"), ("a:b", "tradeguard"), ("alice", "x\ny")]
)
def test_bad_names_are_refused(secret: Token, account: str, issuer: str) -> None:
    with pytest.raises(ValueError, match="printable text without ':'"):
        provisioning_uri(secret, account=account, issuer=issuer)


def test_the_qr_code_is_a_plain_svg_without_scripts_or_text(secret: Token) -> None:
    uri = provisioning_uri(secret, account="alice", issuer="tradeguard")
    svg = qr_svg(uri)
    root = ET.fromstring(svg)  # noqa: S314 - our own output, parsed to inspect it
    assert root.tag.rpartition("}")[2] == "svg"
    tags = {element.tag.rpartition("}")[2] for element in root.iter()}
    assert tags <= {"svg", "g", "path", "rect"}
    for element in root.iter():
        for name in element.attrib:
            assert not name.lower().startswith("on"), name
            assert "href" not in name.lower()
    assert "script" not in svg.lower()
    with secret.reveal_text() as text:
        assert text not in svg  # the secret is in the modules, not in readable text
    assert "otpauth" not in svg


def test_the_qr_code_depends_on_the_uri(secret: Token) -> None:
    uri = provisioning_uri(secret, account="alice", issuer="tradeguard")
    other = provisioning_uri(new_totp_secret(), account="alice", issuer="tradeguard")
    assert qr_svg(uri) == qr_svg(uri)
    assert qr_svg(uri) != qr_svg(other)
