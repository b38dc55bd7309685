"""Login passwords: the length and strength policy, and Argon2id hashes in PHC strings.

What a password is (NIST SP 800-63B, 5.1.1.2): the text is normalized to Unicode NFKC, so the
same password typed on two keyboards (a full-width letter, a composed or decomposed accent) is one
password. Length is counted in code points of the NFKC text and must be from `MIN_LENGTH` to
`MAX_LENGTH`; the hash is taken over the UTF-8 of the NFKC text, in `hash` and `verify` alike.
Nothing is truncated and there are no composition rules (no "one digit, one symbol").

Before any decoding, input longer than `4 * MAX_LENGTH` bytes (more than any 1024 characters
take in UTF-8) is refused, so an attacker's megabyte never reaches normalization or Argon2.

argon2-cffi and zxcvbn take `bytes`/`str`, so an immutable copy of the normalized password lives
for the length of one call (docs/security.md says what zeroing can and cannot promise).
"""

from __future__ import annotations

import re
import secrets
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn  # type: ignore[import-untyped]
from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

from tradeguard.core.errors import LoginFailed, WeakPassword
from tradeguard.crypto import KdfParams
from tradeguard.secrets import Password, Secret

__all__ = [
    "DEFAULT_HASH_PARAMS",
    "MAX_LENGTH",
    "MIN_LENGTH",
    "HashParams",
    "PasswordHasher",
    "check_strength",
]

MIN_LENGTH = 12
MAX_LENGTH = 1024
# UTF-8 takes at most 4 bytes a code point: longer raw input cannot be an allowed password.
_MAX_INPUT_BYTES = 4 * MAX_LENGTH
# zxcvbn's matching grows faster than linearly with length (every substring is looked up in
# every dictionary, with l33t variants): 100 characters cost ~50 ms, 1024 would cost seconds of
# CPU per request. The first 100 characters decide the score; a longer password whose start is
# guessable is refused, which errs on the safe side.
_ZXCVBN_MAX_CHARS = 100
# Context words shorter than this match inside too many ordinary words to be refused.
_MIN_CONTEXT_WORD = 3
_SERVICE_WORDS = ("tradeguard",)

_LOGIN_FAILED = "wrong name or password"
_LENGTH_RULE = f"a password must be {MIN_LENGTH} to {MAX_LENGTH} characters long"

# OWASP's floor for Argon2id: 19 MiB with 2 passes, or as much work spread differently.
_MIN_MEMORY_KIB = 19 * 1024
_MIN_COST = _MIN_MEMORY_KIB * 2
_HASH_LEN = 32
_SALT_LEN = 16
_MAX_PHC_LEN = 256  # a PHC string with our lengths is ~100 characters


@dataclass(frozen=True, slots=True)
class HashParams:
    """Argon2id costs for login hashes, at or above OWASP's minimum."""

    memory_kib: int
    iterations: int
    lanes: int

    def __post_init__(self) -> None:
        KdfParams(self.memory_kib, self.iterations, self.lanes)  # types and sane upper bounds
        if self.memory_kib < _MIN_MEMORY_KIB:
            raise ValueError(
                f"Argon2id memory_kib must be at least {_MIN_MEMORY_KIB} (OWASP's minimum)"
            )
        if self.memory_kib * self.iterations < _MIN_COST:
            raise ValueError(
                f"Argon2id memory_kib * iterations must be at least {_MIN_COST} (OWASP: 19 MiB "
                "with 2 passes, or e.g. 46 MiB with 1); raise one of them"
            )


DEFAULT_HASH_PARAMS = HashParams(memory_kib=19456, iterations=2, lanes=1)


class PasswordHasher:
    """Argon2id hashes of login passwords as PHC strings (`$argon2id$v=19$m=...`).

    `verify` raises `LoginFailed` for every way a login can fail, including a hash it cannot
    use, so callers have one error to handle. Call `burn` for a name with no account, so an
    unknown name costs the same time as a wrong password.
    """

    def __init__(self, params: HashParams = DEFAULT_HASH_PARAMS) -> None:
        if not isinstance(params, HashParams):
            raise TypeError("params must be a HashParams")
        self.params = params
        self._argon2 = argon2.PasswordHasher(
            time_cost=params.iterations,
            memory_cost=params.memory_kib,
            parallelism=params.lanes,
            hash_len=_HASH_LEN,
            salt_len=_SALT_LEN,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: Password) -> str:
        """The PHC string of a new password (a fresh random salt each time).

        Refuses (`WeakPassword`) a password outside the length bounds or not UTF-8; the strength
        rules are `check_strength`'s, called before this.
        """
        text = _policy_text(password)
        return self._argon2.hash(text.encode("utf-8"))

    def verify(self, phc: str, password: Password) -> None:
        """Return if `password` matches `phc`; raise `LoginFailed` otherwise, whatever the cause."""
        text = _login_text(password)
        if text is None or not _usable_phc(phc):
            raise LoginFailed(_LOGIN_FAILED)
        failed = False
        try:
            self._argon2.verify(phc, text.encode("utf-8"))
        except (VerificationError, InvalidHashError, ValueError):
            # One outcome for mismatch, corrupt hash and unsupported parameters. Raised below,
            # outside the handler, so argon2's exception is not chained into ours.
            failed = True
        if failed:
            raise LoginFailed(_LOGIN_FAILED)

    def needs_rehash(self, phc: str) -> bool:
        """True when `phc` was made with other parameters than these (or cannot be read):
        after a successful login, store a fresh `hash` of the password."""
        if not _usable_phc(phc):
            return True
        return self._argon2.check_needs_rehash(phc)

    def burn(self, password: Password) -> None:
        """Do the work of a failed `verify`, for a login to an account that does not exist.

        The dummy hash it verifies against is made on first use, with this hasher's parameters,
        so the first unknown-account login pays one extra hash.
        """
        try:
            self.verify(self._dummy_hash(), password)
        except LoginFailed:
            return

    def _dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy is None:
                # Random, so no password can ever match it (and nothing secret is in the code).
                self._dummy = self._argon2.hash(secrets.token_bytes(32))
            return self._dummy


def _usable_phc(phc: object) -> bool:
    """True for an Argon2id PHC string whose parameters are sane to run.

    argon2-cffi trusts the hash it is given; a corrupted or tampered row could otherwise ask for
    terabytes of memory or a different Argon2 variant.
    """
    if not isinstance(phc, str) or len(phc) > _MAX_PHC_LEN or not phc.isascii():
        return False
    try:
        params = argon2.extract_parameters(phc)
        KdfParams(params.memory_cost, params.time_cost, params.parallelism)  # sane bounds
    except (InvalidHashError, ValueError):
        return False
    return (
        params.type is argon2.Type.ID
        and params.version == argon2.low_level.ARGON2_VERSION
        and params.salt_len >= 8
        and params.hash_len >= 16
    )


# -- text ------------------------------------------------------------------------------------


def _require_secret(password: object) -> None:
    if not isinstance(password, Secret):
        raise TypeError("password must be a Password (a Secret), not a plain value")


def _decode_nfkc(password: Secret) -> str | None:
    """The NFKC text of the password, or None when its bytes are not UTF-8."""
    with password.reveal() as view:
        try:
            raw = str(view, "utf-8")
        except UnicodeDecodeError:
            # The error quotes the offending bytes: drop it here rather than chain it anywhere.
            return None
    return unicodedata.normalize("NFKC", raw)


def _policy_text(password: Password) -> str:
    """The NFKC text of a new password, after the length bounds (`WeakPassword` if broken)."""
    _require_secret(password)
    if len(password) > _MAX_INPUT_BYTES:
        raise WeakPassword(f"{_LENGTH_RULE}; this one is longer")
    text = _decode_nfkc(password)
    if text is None:
        raise WeakPassword("a password must be text (valid UTF-8); type it again")
    if len(text) > MAX_LENGTH:
        raise WeakPassword(f"{_LENGTH_RULE}; this one is longer")
    if len(text) < MIN_LENGTH:
        raise WeakPassword(f"{_LENGTH_RULE}; this one is shorter")
    return text


def _login_text(password: Password) -> str | None:
    """The NFKC text of a login attempt, or None when it cannot match any stored hash.

    No minimum here: raising MIN_LENGTH later must not lock out accounts made before.
    """
    _require_secret(password)
    if len(password) > _MAX_INPUT_BYTES:
        return None
    text = _decode_nfkc(password)
    if text is None or len(text) > MAX_LENGTH:
        return None
    return text


# -- strength --------------------------------------------------------------------------------


def check_strength(
    password: Password, *, user_inputs: Sequence[str] = (), min_score: int = 3
) -> None:
    """Raise `WeakPassword` unless `password` is fit to be a new login password.

    In order: the length bounds; not one of the service's own words or the user's (`user_inputs`:
    name, email; an email counts by its local part and the words in it); not a common password
    (zxcvbn's list, exact and case-insensitive); and a zxcvbn score of at least `min_score`
    (0-4). The message says which rule failed, never the password.
    """
    if not 0 <= min_score <= 4:
        raise ValueError("min_score is a zxcvbn score from 0 to 4")
    text = _policy_text(password)
    folded = text.casefold()
    words = _context_words(user_inputs)
    if any(word in folded for word in words):
        raise WeakPassword(
            "a password must not contain your user name, your email address or the name of "
            "this service; choose one without them"
        )
    if folded in _common_passwords():
        raise WeakPassword(
            "this is one of the most common passwords; choose a passphrase of several "
            "unrelated words instead"
        )
    score, feedback = _zxcvbn_score(text[:_ZXCVBN_MAX_CHARS], words)
    if score < min_score:
        raise WeakPassword(
            f"this password is too easy to guess (strength {score} of 4, {min_score} needed)"
            f"{feedback}"
        )


def _context_words(user_inputs: Sequence[str]) -> list[str]:
    """Lower-cased words a password must not contain: each input, the local part of an email
    and the words in it, and the service's name."""
    if isinstance(user_inputs, str):
        raise TypeError("user_inputs is a sequence of strings, not one string")
    words: set[str] = set(_SERVICE_WORDS)
    for item in user_inputs:
        folded = unicodedata.normalize("NFKC", item).casefold().strip()
        local = folded.rpartition("@")[0] or folded
        words.add(local)
        words.update(re.split(r"[\W_]+", local))
    return sorted(w for w in words if len(w) >= _MIN_CONTEXT_WORD)


_common_lock = threading.Lock()
_common: frozenset[str] | None = None


def _common_passwords() -> frozenset[str]:
    """zxcvbn's own `passwords` frequency list (30,000 entries), built on first use."""
    global _common
    with _common_lock:
        if _common is None:
            entries: Any = FREQUENCY_LISTS["passwords"]
            if isinstance(entries, str):  # older zxcvbn builds keep one comma-separated string
                entries = entries.split(",")
            _common = frozenset(str(entry).casefold() for entry in entries)
        return _common


# zxcvbn keeps the caller's user_inputs in a module-global dictionary during a call, so two
# concurrent calls would see each other's words: one call at a time.
_zxcvbn_lock = threading.Lock()


def _zxcvbn_score(text: str, words: Sequence[str]) -> tuple[int, str]:
    """zxcvbn's score and its advice as one line (empty when it has none)."""
    with _zxcvbn_lock:
        result = zxcvbn(text, user_inputs=list(words), max_length=_ZXCVBN_MAX_CHARS)
    score = int(result["score"])
    feedback = result.get("feedback") or {}
    advice = [str(feedback.get("warning") or ""), *map(str, feedback.get("suggestions") or ())]
    line = " ".join(" ".join(a.split()) for a in advice if a.strip())
    return score, f": {line}" if line else ""
