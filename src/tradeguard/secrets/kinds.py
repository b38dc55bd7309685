"""The kinds of secret tradeguard holds, each a `Secret` with a name and a shape.

The kind shows up in masks (`ApiSecret(***, len=64)`) and in redaction markers
(`[REDACTED:api_secret]`). Shape checks reject obvious mistakes at the edge (a wallet phrase with
a typo, half a PEM block) and their messages never quote the value.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from tradeguard.core.errors import SecretValueError
from tradeguard.secrets import bip39
from tradeguard.secrets.secret import Secret

__all__ = ["ApiKey", "ApiSecret", "Mnemonic", "Passphrase", "Password", "PrivateKey", "Token"]


class ApiKey(Secret):
    """The public-id half of an exchange API key pair.

    Venues print it on their own key page, so a long one may show its first three characters
    (`ABC***`) to let a person tell keys apart. It is still a credential and still redacted.
    """

    kind: ClassVar[str] = "api_key"
    shown_prefix: ClassVar[int] = 3


class ApiSecret(Secret):
    """The signing half of an exchange API key pair."""

    kind: ClassVar[str] = "api_secret"


class Passphrase(Secret):
    """The third factor some venues add to an API key (OKX, Polymarket)."""

    kind: ClassVar[str] = "passphrase"


class Password(Secret):
    """A person's password: account login or vault unlock."""

    kind: ClassVar[str] = "password"


class Token(Secret):
    """A bearer credential: bot tokens, session tokens, webhook secrets, reset tokens."""

    kind: ClassVar[str] = "token"


_HEX_KEY = re.compile(rb"(?:0x)?[0-9a-fA-F]{64}")
_PEM_KEY = re.compile(
    rb"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----\r?\n"
    rb"(?:[A-Za-z0-9+/=:, -]*\r?\n)+"
    rb"-----END \1PRIVATE KEY-----\r?\n?"
)


class PrivateKey(Secret):
    """A signing key: 32 bytes as 64 hex digits (optionally `0x`-prefixed), or a PEM block.

    Hex keys sign on EVM chains and Hyperliquid; PEM keys sign Kalshi requests (RSA) and others.
    """

    kind: ClassVar[str] = "private_key"

    def _check(self, value: memoryview) -> None:
        if _HEX_KEY.fullmatch(value) or _PEM_KEY.fullmatch(value):
            return
        raise SecretValueError(
            "a private key must be 64 hex digits (optionally 0x-prefixed) or a complete "
            "'-----BEGIN ... PRIVATE KEY-----' PEM block; check that it was pasted whole"
        )

    @property
    def encoding(self) -> Literal["hex", "pem"]:
        with self.reveal() as value:
            return "pem" if value[:5].tobytes() == b"-----" else "hex"


class Mnemonic(Secret):
    """A BIP39 recovery phrase: 12-24 English list words, single spaces, valid checksum."""

    kind: ClassVar[str] = "mnemonic"

    def _check(self, value: memoryview) -> None:
        words = value.tobytes().split(b" ")
        if len(words) not in bip39.VALID_LENGTHS:
            raise SecretValueError(
                f"a recovery phrase has 12, 15, 18, 21 or 24 words separated by single spaces; "
                f"this one has {len(words)}"
            )
        decoded = [w.decode("ascii", errors="replace") for w in words]
        for position, word in enumerate(decoded, start=1):
            if word not in bip39.WORDS:
                raise SecretValueError(
                    f"word {position} of the recovery phrase is not in the BIP39 English list; "
                    "check its spelling"
                )
        if not bip39.checksum_ok(decoded):
            raise SecretValueError(
                "the recovery phrase fails its BIP39 checksum: a word is wrong or out of order"
            )
