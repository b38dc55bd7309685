"""The typed kinds: their names in masks and their shape checks."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tradeguard.core.errors import SecretValueError
from tradeguard.secrets import (
    ApiKey,
    ApiSecret,
    Mnemonic,
    Passphrase,
    Password,
    PrivateKey,
    Secret,
    Token,
)

VECTORS = Path(__file__).parents[1] / "data" / "bip39-english.json"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (ApiKey, "api_key"),
        (ApiSecret, "api_secret"),
        (Passphrase, "passphrase"),
        (Password, "password"),
        (Token, "token"),
    ],
)
def test_each_kind_is_a_secret_with_its_own_name(kind: type[Secret], name: str) -> None:
    value = secrets.token_hex(16)
    s = kind(value)
    assert isinstance(s, Secret)
    assert s.kind == name
    assert repr(s).startswith(f"{kind.__name__}(")
    assert value not in repr(s)


def test_private_key_accepts_hex_with_or_without_0x() -> None:
    raw = secrets.token_hex(32)
    assert PrivateKey(raw).encoding == "hex"
    assert PrivateKey("0x" + raw).encoding == "hex"


def test_private_key_accepts_a_generated_pem_block() -> None:
    key = PrivateKey(_generated_pem())
    assert key.encoding == "pem"
    assert "PRIVATE" not in repr(key)


def _generated_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public_pem() -> str:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda: "ab" * 31,  # 62 hex digits
        lambda: "zz" * 32,
        lambda: _generated_pem()[:60],  # pasted only in part, no END line
        _public_pem,
    ],
)
def test_private_key_rejects_malformed_input_without_quoting_it(make_bad: Any) -> None:
    bad = make_bad()
    with pytest.raises(SecretValueError) as raised:
        PrivateKey(bad)
    assert bad not in str(raised.value)
    assert bad.splitlines()[-1] not in str(raised.value)


def _english_vectors() -> list[tuple[str, str]]:
    data = json.loads(VECTORS.read_text())
    return [(case["entropy"], case["mnemonic"]) for case in data["english"]]


@pytest.mark.parametrize(("entropy", "phrase"), _english_vectors())
def test_mnemonic_accepts_every_bip39_english_vector(entropy: str, phrase: str) -> None:
    m = Mnemonic(phrase)
    assert repr(m) == f"Mnemonic(***, len={len(phrase)})"


def test_mnemonic_with_a_wrong_word_names_the_position_not_the_word() -> None:
    phrase = _english_vectors()[3][1].split(" ")
    phrase[4] = "bitcoinx"
    with pytest.raises(SecretValueError, match="word 5 ") as raised:
        Mnemonic(" ".join(phrase))
    assert "bitcoinx" not in str(raised.value)


def test_mnemonic_with_a_bad_checksum_is_refused() -> None:
    words = _english_vectors()[-1][1].split(" ")  # 24 words: an 8-bit checksum
    i = next(i for i in range(len(words) - 1) if words[i] != words[i + 1])
    words[i], words[i + 1] = words[i + 1], words[i]
    with pytest.raises(SecretValueError, match="checksum"):
        Mnemonic(" ".join(words))


def test_mnemonic_with_the_wrong_number_of_words_is_refused() -> None:
    with pytest.raises(SecretValueError, match="this one has 11"):
        Mnemonic(" ".join(["abandon"] * 11))


def test_a_rejected_value_is_wiped_before_the_error_propagates() -> None:
    captured: list[bytearray] = []

    class Spy(PrivateKey):
        def _check(self, value: memoryview) -> None:
            captured.append(value.obj)  # type: ignore[arg-type]
            super()._check(value)

    with pytest.raises(SecretValueError):
        Spy("not-a-key-" * 4)
    assert captured
    assert not any(captured[0])
