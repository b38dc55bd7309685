"""Which redaction rules could match a line: the guard phase of `patterns.redact_text`.

Almost no log line holds a secret, so the redactor first asks, for each rule, whether its regex
could match at all: is its trigger word in the lower-cased line, or a run of the right
characters (64 hex digits, 8 hex digits and a colon, 47 characters of lowercase words)? The
answer is a bit mask, and only the rules in it run.

Two implementations give the same mask (tests/secrets/test_guards.py holds them equal on
generated text): `rules_py`, the reference, and the optional C extension `_guard`, which does the
same in one pass over an ASCII line and costs about a tenth as much. The extension is built at
install when a compiler is present; without it, `rules_ascii` is `rules_py` (same output,
slower) and `tradeguard doctor` says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

__all__ = ["ACCELERATED", "ALL", "rules_ascii", "rules_py"]

PEM: Final = 1 << 0
BEARER: Final = 1 << 1
BASIC: Final = 1 << 2
JWT: Final = 1 << 3
URL_PASSWORD: Final = 1 << 4
SLACK: Final = 1 << 5
AWS: Final = 1 << 6
TELEGRAM: Final = 1 << 7
HEX_KEY: Final = 1 << 8
MNEMONIC: Final = 1 << 9
FIELD: Final = 1 << 10
ALL: Final = (1 << 11) - 1


def _class_map(*groups: tuple[bytes, bytes]) -> bytes:
    """A bytes.translate table sending each listed byte to its class letter, the rest to NUL."""
    table = bytearray(256)
    for members, letter in groups:
        for byte in members:
            table[byte] = letter[0]
    return bytes(table)


# Hex digits and the colon, for two guards on one translation: "64 hex digits in a row" (hex
# keys) and "8 hex digits and a colon" (Telegram tokens; the regex wants digits and decides).
HEX_COLON_MAP: Final = _class_map((b"0123456789abcdefABCDEF", b"x"), (b":", b":"))
HEX_RUN: Final = b"x" * 64
_HEX_RUN_SHORT = b"x" * 16  # searching a short needle first is several times cheaper
_TELEGRAM_HEAD = b"x" * 8 + b":"
_TELEGRAM_MIN_LEN = 8 + 1 + 35  # the shortest token; a 64-hex key is longer still
# Lowercase letters and the space: a mnemonic is at least twelve 3-letter words and 11 spaces.
WORDS_MAP: Final = _class_map((b"abcdefghijklmnopqrstuvwxyz ", b"a"))
WORD_RUN_MIN: Final = b"a" * (12 * 3 + 11)

# Words whose every occurrence is examined as a possible credential field name (patterns._fields).
# `pass` and `sign` are wider than what counts (`passed`, `signal`); the rule decides on the name.
FIELD_WORDS: Final = ("key", "secret", "token", "pass", "pwd", "sign", "credential", "auth",
                      "cookie", "mnemonic", "ticket")  # fmt: skip
# The words in every name `_fields` redacts (its _SENSITIVE_NAME, and `sign` as a last segment).
_FIELD_TRIGGERS = ("key", "secret", "token", "passw", "passphrase", "pwd", "sign", "credential",
                   "auth", "cookie", "mnemonic", "ticket")  # fmt: skip
_NAME_REST = re.compile(r"[a-z0-9_.\-]*")  # the rest of a field name, lower-cased
_VALUE_START = re.compile(r"[\"']?[ \t]*[:=]")  # a closing quote, blanks, then `=` or `:`


def _may_hold_field(low: str) -> bool:
    """Is a trigger word in `low` (lower-cased) at all? An `or` chain of `in` tests: several
    times faster than any() over a tuple, and false for almost every line."""
    return (
        "key" in low
        or "secret" in low
        or "token" in low
        or "passw" in low
        or "passphrase" in low
        or "auth" in low
        or "pwd" in low
        or "cookie" in low
        or "credential" in low
        or "mnemonic" in low
        or "ticket" in low
        or "sign" in low
    )


def _holds_field(low: str) -> bool:
    """Does a trigger word begin a name followed by a value: the rest of the name, an optional
    closing quote, blanks, then `=` or `:`? `sign` counts only when no letter follows it (or
    `signature`): `signal` and `signed` are trading words, not fields.

    Linear in the line: a hit inside a name already measured ends where that name ends.
    """
    hits = sorted((at, len(word)) for word in _FIELD_TRIGGERS for at in _occurrences(low, word))
    measured = 0
    for at, length in hits:
        if at < measured:
            continue
        end = at + length
        if low.startswith("sign", at) and length == len("sign"):
            end += len("ature") if low.startswith("ature", end) else 0
            if "a" <= low[end : end + 1] <= "z":
                continue
        name_end = end + len(_NAME_REST.match(low, end)[0])  # type: ignore[index]  # matches ""
        if _VALUE_START.match(low, name_end):
            return True
        measured = name_end
    return False


def _occurrences(text: str, word: str) -> list[int]:
    found = []
    at = text.find(word)
    while at != -1:
        found.append(at)
        at = text.find(word, at + 1)
    return found


def rules_py(text: str) -> int:
    """The rules that could match `text`, as a mask of this module's bits (the reference)."""
    low = text.lower()
    found = 0
    if "-----begin" in low:
        found |= PEM
    if "bearer" in low:
        found |= BEARER
    if "basic" in low:
        found |= BASIC
    if "eyj" in low:
        found |= JWT
    if "://" in low and "@" in low:
        found |= URL_PASSWORD
    if "xox" in low or "xapp-" in low or "hooks.slack" in low:
        found |= SLACK
    if "AKIA" in text or "ASIA" in text:
        found |= AWS
    raw = text.encode("ascii", "replace")  # one byte per character, for the class maps
    if len(raw) >= _TELEGRAM_MIN_LEN:
        hexes = raw.translate(HEX_COLON_MAP)
        if _TELEGRAM_HEAD in hexes:
            found |= TELEGRAM
        if _HEX_RUN_SHORT in hexes and HEX_RUN in hexes:
            found |= HEX_KEY
    if text.count(" ") >= 11 and WORD_RUN_MIN in raw.translate(WORDS_MAP):
        found |= MNEMONIC
    if _may_hold_field(low) and _holds_field(low):
        found |= FIELD
    return found


def _load_accelerator() -> Callable[[str], int] | None:
    try:
        from tradeguard.secrets._guard import rules as fast
    except ImportError:
        return None
    return fast


_fast = _load_accelerator()
ACCELERATED: Final = _fast is not None
# The guard for ASCII text (`str.isascii()`, one byte per character): the C extension when it
# is built, else the reference. Other text always takes `rules_py`, which knows Unicode case.
rules_ascii: Final[Callable[[str], int]] = _fast if _fast is not None else rules_py
