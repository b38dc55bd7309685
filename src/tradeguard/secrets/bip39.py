"""The BIP39 English word list and checksum, shared by `Mnemonic` and the redactor."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from mnemonic import Mnemonic as _Bip39

__all__ = ["VALID_LENGTHS", "WORDS", "checksum_ok"]

VALID_LENGTHS = (12, 15, 18, 21, 24)


@cache
def _english() -> _Bip39:
    return _Bip39("english")


WORDS: frozenset[str] = frozenset(_english().wordlist)


def checksum_ok(words: Sequence[str]) -> bool:
    """True when `words` (all from the list, a valid length) carry a correct BIP39 checksum."""
    if len(words) not in VALID_LENGTHS:
        return False
    return bool(_english().check(" ".join(words)))
