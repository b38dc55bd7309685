"""Which fields a credential has, per venue, and what each field must look like.

Every field is stored encrypted, public ones included (a venue client needs the whole account
address or key id to sign). Public identifiers also get a masked form (`0x12…ab`, `ABC…xyz`)
stored in clear for lists and audit entries; secret fields get nothing in clear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from tradeguard.core.errors import SecretValueError, VaultError
from tradeguard.secrets import ApiKey, ApiSecret, Passphrase, PrivateKey, Secret

__all__ = [
    "VENUES",
    "FieldSpec",
    "VenueSchema",
    "masked_public",
    "schema_for",
    "validate_fields",
]

_ADDRESS = re.compile(rb"0x[0-9a-fA-F]{40}")
_TOKEN_CHARS = re.compile(rb"[\x21-\x7e]{8,512}")  # printable ASCII, no spaces
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class AccountAddress(Secret):
    """An EVM account address: public, but stored encrypted like every credential field."""

    kind = "account_address"

    def _check(self, value: memoryview) -> None:
        if not _ADDRESS.fullmatch(value):
            raise SecretValueError("an account address is 0x followed by 40 hex digits")


class ApiKeyId(ApiKey):
    """An API key id: printable ASCII without spaces, 8 to 512 characters."""

    def _check(self, value: memoryview) -> None:
        if not _TOKEN_CHARS.fullmatch(value):
            raise SecretValueError(
                "an API key is 8 to 512 printable characters without spaces; check the paste"
            )


class ApiSecretText(ApiSecret):
    def _check(self, value: memoryview) -> None:
        if not _TOKEN_CHARS.fullmatch(value):
            raise SecretValueError(
                "an API secret is 8 to 512 printable characters without spaces; check the paste"
            )


class KalshiKeyId(ApiKey):
    """Kalshi's API key id is a UUID."""

    def _check(self, value: memoryview) -> None:
        if not _UUID.fullmatch(value):
            raise SecretValueError("a Kalshi key id is a UUID (8-4-4-4-12 hex digits)")


class PemPrivateKey(PrivateKey):
    def _check(self, value: memoryview) -> None:
        super()._check(value)
        if value[:5].tobytes() != b"-----":
            raise SecretValueError("this venue needs the private key as a PEM block")


class HexPrivateKey(PrivateKey):
    def _check(self, value: memoryview) -> None:
        super()._check(value)
        if value[:5].tobytes() == b"-----":
            raise SecretValueError("this venue needs the private key as 64 hex digits, not PEM")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str  # what the prompt asks for
    type: type[Secret]
    public: bool = False  # a public identifier: shown masked in lists

    def parse(self, value: str | bytes | bytearray | memoryview) -> Secret:
        return self.type(value)


@dataclass(frozen=True)
class VenueSchema:
    venue: str
    fields: tuple[FieldSpec, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def _key_pair(venue: str, *extra: FieldSpec) -> VenueSchema:
    return VenueSchema(
        venue,
        (
            FieldSpec("api_key", "API key", ApiKeyId, public=True),
            FieldSpec("api_secret", "API secret", ApiSecretText),
            *extra,
        ),
    )


VENUES: Mapping[str, VenueSchema] = {
    "binance": _key_pair("binance"),
    "bybit": _key_pair("bybit"),
    "okx": _key_pair("okx", FieldSpec("passphrase", "API passphrase", Passphrase)),
    "hyperliquid": VenueSchema(
        "hyperliquid",
        (
            FieldSpec("agent_private_key", "API wallet (agent) private key", HexPrivateKey),
            FieldSpec("account_address", "main account address", AccountAddress, public=True),
        ),
    ),
    "kalshi": VenueSchema(
        "kalshi",
        (
            FieldSpec("key_id", "API key id", KalshiKeyId, public=True),
            FieldSpec("private_key", "RSA private key (PEM)", PemPrivateKey),
        ),
    ),
    "polymarket": VenueSchema(
        "polymarket",
        (
            FieldSpec("signer_private_key", "signer private key", HexPrivateKey),
            FieldSpec("funder_address", "funder (proxy wallet) address", AccountAddress, True),
            FieldSpec("api_key", "CLOB API key", ApiKeyId, public=True),
            FieldSpec("api_secret", "CLOB API secret", ApiSecretText),
            FieldSpec("api_passphrase", "CLOB API passphrase", Passphrase),
        ),
    ),
    "paper": VenueSchema("paper", ()),
}


def schema_for(venue: str) -> VenueSchema:
    try:
        return VENUES[venue]
    except KeyError:
        raise VaultError(
            f"unknown venue {venue!r}; choose one of: {', '.join(sorted(VENUES))}"
        ) from None


def validate_fields(schema: VenueSchema, fields: Mapping[str, Secret]) -> None:
    """Exactly the schema's fields, each already parsed into its type."""
    missing = [n for n in schema.names if n not in fields]
    extra = sorted(set(fields) - set(schema.names))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise VaultError(
            f"a {schema.venue} credential has the fields {', '.join(schema.names) or '(none)'}; "
            f"{'; '.join(parts)}"
        )
    for spec in schema.fields:
        if not isinstance(fields[spec.name], spec.type):
            raise TypeError(f"field {spec.name} must be a {spec.type.__name__}")


def masked_public(value: Secret) -> str:
    """`ABC***` for a key id (as its own repr shows it), `0x1234…cdef` for an address (public
    on chain anyway): enough to tell two apart, not enough to use one."""
    if not isinstance(value, AccountAddress):
        return value.masked()
    with value.reveal() as view:
        text = view.tobytes().decode("ascii")
    return f"{text[:6]}…{text[-4:]}"
