"""The BIP39 English word list (from the `mnemonic` package) and the checksum rule.

The checksum is computed here rather than with `Mnemonic.check`, which looks each word up with
`list.index` (2048 comparisons a word): the redactor runs it on every candidate phrase.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mnemonic import Mnemonic as _Bip39

__all__ = ["VALID_LENGTHS", "WORDS", "checksum_ok"]

VALID_LENGTHS = (12, 15, 18, 21, 24)
_INDEX: dict[str, int] = {word: i for i, word in enumerate(_Bip39("english").wordlist)}
WORDS: frozenset[str] = frozenset(_INDEX)


def checksum_ok(words: Sequence[str]) -> bool:
    """True when `words` are list words of a valid count whose BIP39 checksum matches.

    Each word is 11 bits; the last n/3 bits are the first bits of SHA-256 of the rest.
    """
    if len(words) not in VALID_LENGTHS or not all(w in _INDEX for w in words):
        return False
    bits = 0
    for word in words:
        bits = (bits << 11) | _INDEX[word]
    checksum_bits = len(words) // 3
    entropy = (bits >> checksum_bits).to_bytes(len(words) * 4 // 3, "big")
    expected = hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits)
    return expected == bits & ((1 << checksum_bits) - 1)
