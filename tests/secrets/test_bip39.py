"""Our BIP39 checksum (used by the redactor and Mnemonic) against the reference library."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from mnemonic import Mnemonic as Reference

from tradeguard.secrets.bip39 import VALID_LENGTHS, WORDS, checksum_ok

REFERENCE = Reference("english")
VECTORS = json.loads((Path(__file__).parents[1] / "data" / "bip39-english.json").read_text())


def test_every_vector_passes() -> None:
    assert all(checksum_ok(case["mnemonic"].split(" ")) for case in VECTORS["english"])


@settings(max_examples=2000)
@given(
    st.sampled_from(VALID_LENGTHS).flatmap(
        lambda n: st.lists(st.sampled_from(REFERENCE.wordlist), min_size=n, max_size=n)
    )
)
def test_agrees_with_the_reference_on_any_phrase(words: list[str]) -> None:
    assert checksum_ok(words) == REFERENCE.check(" ".join(words))


@given(st.binary(min_size=16, max_size=32).filter(lambda b: len(b) % 4 == 0))
def test_every_generated_phrase_passes(entropy: bytes) -> None:
    assert checksum_ok(REFERENCE.to_mnemonic(entropy).split(" "))


def test_wrong_counts_and_unknown_words_fail() -> None:
    phrase = VECTORS["english"][0]["mnemonic"].split(" ")
    assert not checksum_ok(phrase[:11])
    assert not checksum_ok([*phrase[:11], "notaword"])
    assert "abandon" in WORDS
    assert len(WORDS) == 2048
