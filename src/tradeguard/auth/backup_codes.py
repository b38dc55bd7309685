"""Backup codes: one-time second factors for when the authenticator app is lost.

A code is 24 symbols from Crockford's base32 alphabet (digits and lower-case letters without
i, l, o, u), shown as `xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`: 120 random bits. Typing is forgiving:
case, spaces and dashes do not matter, and the letters people confuse with digits (o, i, l)
read as 0, 1, 1.

Stored as `code_hash`: SHA-256 under a fixed domain prefix, not a slow password hash. A slow
hash protects guessable secrets; 120 random bits are not guessable, even by an attacker who
holds the whole table and attacks every user's 10 codes at once. OWASP ASVS 5.0 (V6.5.2) asks
for a salted password hash below 112 bits of entropy; above it a plain hash is enough, and it
keeps the lookup to one indexed query with no hashing work for an attacker to trigger.
"""

from __future__ import annotations

import hashlib
import secrets

from tradeguard.core.errors import InvalidCode
from tradeguard.secrets import Token

__all__ = ["ALPHABET", "BACKUP_CODE_COUNT", "code_hash", "new_backup_codes", "normalize"]

BACKUP_CODE_COUNT = 10
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case
_GROUPS = 6
_GROUP_LEN = 4
_CODE_LEN = _GROUPS * _GROUP_LEN
_READ_AS = str.maketrans({"o": "0", "i": "1", "l": "1", " ": None, "-": None})
_MAX_INPUT = 64  # room for generous spacing; longer input is not a typed code
_DOMAIN = b"tradeguard/backup-code/v1\x00"
_INVALID = "wrong or already used backup code"


def new_backup_codes() -> list[Token]:
    """`BACKUP_CODE_COUNT` distinct new codes, formatted for showing once to the user."""
    codes: dict[str, None] = {}
    while len(codes) < BACKUP_CODE_COUNT:
        codes[_new_code()] = None
    return [Token(code) for code in codes]


def _new_code() -> str:
    symbols = "".join(secrets.choice(ALPHABET) for _ in range(_CODE_LEN))
    groups = [symbols[i : i + _GROUP_LEN] for i in range(0, _CODE_LEN, _GROUP_LEN)]
    return "-".join(groups)


def normalize(code: str) -> str:
    """The canonical form of a typed code (24 symbols, lower case, no separators).

    Raises `InvalidCode` for anything that cannot be a code; the message is the one a wrong
    code gets, so a typo and a wrong guess look alike.
    """
    if not isinstance(code, str) or len(code) > _MAX_INPUT:
        raise InvalidCode(_INVALID)
    canonical = code.lower().translate(_READ_AS)
    if len(canonical) != _CODE_LEN or not all(symbol in ALPHABET for symbol in canonical):
        raise InvalidCode(_INVALID)
    return canonical


def code_hash(code: str) -> bytes:
    """SHA-256 (32 bytes) of the normalized code under a domain prefix: what the store keeps."""
    return hashlib.sha256(_DOMAIN + normalize(code).encode("ascii")).digest()
