"""Backup codes: ten distinct 120-bit codes, forgiving normalization, a stable domain-separated
hash, and every kind of garbage refused with the wrong-code message."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from tradeguard.auth.backup_codes import (
    ALPHABET,
    BACKUP_CODE_COUNT,
    code_hash,
    new_backup_codes,
    normalize,
)
from tradeguard.core.errors import InvalidCode
from tradeguard.secrets import Token

SHAPE = re.compile(r"[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){5}")
CODE = "7k2m-q9xz-4pbh-0d8w-ab3c-9tty"
CANONICAL = "7k2mq9xz4pbh0d8wab3c9tty"
# sha256(b"tradeguard/backup-code/v1\x00" + CANONICAL): changing it orphans every stored code
CODE_SHA256 = "afb0e8a9d07b0aead80f7b6b86f2b328862fb934dbfb321cec87bcdedfb3d6ac"


def _texts(codes: list[Token]) -> list[str]:
    texts = []
    for code in codes:
        with code.reveal_text() as text:
            texts.append(text)
    return texts


def test_ten_distinct_codes_of_the_documented_shape() -> None:
    codes = new_backup_codes()
    assert BACKUP_CODE_COUNT == 10
    assert len(codes) == 10
    assert all(isinstance(code, Token) for code in codes)
    texts = _texts(codes)
    assert len(set(texts)) == 10
    for text in texts:
        assert SHAPE.fullmatch(text), text
        assert normalize(text) == text.replace("-", "")


def test_each_code_carries_120_bits() -> None:
    assert len(set(ALPHABET)) == 32  # 5 bits a symbol
    assert not set(ALPHABET) & set("ilou")  # the symbols people misread
    assert len(normalize(_texts(new_backup_codes())[0])) * 5 == 120


def test_every_symbol_of_the_alphabet_is_used() -> None:
    counts = Counter("".join(normalize(t) for _ in range(10) for t in _texts(new_backup_codes())))
    assert set(counts) == set(ALPHABET)


def test_the_codes_are_masked_in_reprs() -> None:
    codes = new_backup_codes()
    for code, text in zip(codes, _texts(codes), strict=True):
        assert text not in repr(code)
        assert normalize(text) not in repr(code)


@pytest.mark.parametrize(
    "typed",
    [
        CODE,
        CANONICAL,
        CODE.upper(),
        " 7K2M Q9XZ 4PBH 0D8W AB3C 9TTY ",
        "7k2m-q9xz 4pbh--0d8w-ab3c9tty",
        "7k2mq9xz-4pbh-Od8w-ab3c-9tty",  # a letter O typed for the zero
    ],
)
def test_normalization_forgives_case_spaces_dashes_and_look_alikes(typed: str) -> None:
    assert normalize(typed) == CANONICAL


def test_i_and_l_read_as_one() -> None:
    assert normalize("1111-iiii-llll-IILL-1111-iiii") == "1" * 24


def test_normalize_is_idempotent() -> None:
    for text in _texts(new_backup_codes()):
        assert normalize(normalize(text)) == normalize(text)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "7k2m-q9xz-4pbh-0d8w",  # 16 symbols
        CODE + "a",
        "7k2m-q9xz-4pbh-0d8w-ab3c-9ttu",  # u is not in the alphabet
        "7k2m_q9xz_4pbh_0d8w_ab3c_9tty",
        "7k2m.q9xz.4pbh.0d8w.ab3c.9tty",
        "７k2m-q9xz-4pbh-0d8w-ab3c-9tty",  # noqa: RUF001 - a full-width digit
        "7k2m-q9xz-4pbh-0d8w-ab3c-9tty\n",
        " " * 41 + CANONICAL,  # 65 characters
        "x" * 100_000,
    ],
)
def test_garbage_is_refused_like_a_wrong_code(garbage: str) -> None:
    with pytest.raises(InvalidCode) as caught:
        normalize(garbage)
    assert caught.value.message == "wrong or already used backup code"
    with pytest.raises(InvalidCode):
        code_hash(garbage)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(InvalidCode):
        normalize(b"7k2mq9xz4pbh0d8wab3c9tty")  # type: ignore[arg-type]


def test_the_hash_is_stable_and_domain_separated() -> None:
    digest = code_hash(CODE)
    assert len(digest) == 32
    assert digest.hex() == CODE_SHA256
    assert digest == hashlib.sha256(b"tradeguard/backup-code/v1\x00" + CANONICAL.encode()).digest()
    assert digest != hashlib.sha256(CANONICAL.encode()).digest()


def test_every_spelling_of_a_code_has_one_hash() -> None:
    assert (
        code_hash(CODE)
        == code_hash(" 7K2M Q9XZ 4PBH OD8W AB3C 9TTY ")
        == code_hash(normalize(CODE))
    )


def test_different_codes_have_different_hashes() -> None:
    hashes = {code_hash(text) for text in _texts(new_backup_codes())}
    assert len(hashes) == 10
