"""The one envelope format for everything tradeguard encrypts at rest.

    envelope = format_version (1 byte) || key_version (4 bytes, big-endian)
               || nonce (12 random bytes) || AES-256-GCM ciphertext || tag (16 bytes)

The associated data binds each envelope to where it belongs (`Binding`: owner, record, field)
and to its own header (format and key version), so a ciphertext copied to another row, user or
field, or relabelled with another key version, fails to decrypt. Every failure raises the same
`IntegrityError`: which check failed is no business of whoever tampered with the row.

Nonces are 96 random bits per encryption. With one key that stays safe (collision chance below
2^-32) for about 2^32 encryptions; a DEK encrypts a few fields per credential change and a master
key wraps one DEK per user per rotation, many orders of magnitude below that.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TypeVar, overload

from cryptography.exceptions import InvalidTag

from tradeguard.core.errors import IntegrityError
from tradeguard.crypto.keys import DataKey
from tradeguard.secrets import Secret

__all__ = [
    "FORMAT_VERSION",
    "NONCE_SIZE",
    "OVERHEAD",
    "TAG_SIZE",
    "Binding",
    "Envelope",
    "decrypt",
    "decrypt_with_aad",
    "encrypt",
    "encrypt_with_aad",
]

S = TypeVar("S", bound=Secret)

FORMAT_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
_HEADER = struct.Struct(">BI")
OVERHEAD = _HEADER.size + NONCE_SIZE + TAG_SIZE
_MAX_KEY_VERSION = 2**32 - 1
# Credentials are a few hundred bytes; a PEM RSA key a few KiB. Bigger is a mistake or an attack.
MAX_PLAINTEXT = 64 * 1024
_AAD_LABEL = b"tradeguard/aead"
_MAX_PART = 2**16 - 1  # each part carries a 2-byte length prefix


def _fail() -> IntegrityError:
    return IntegrityError(
        "a ciphertext failed its integrity check (tampered, truncated, moved to another row, "
        "or under an unknown key); restore it from a backup or enter the secret again"
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    format_version: int
    key_version: int
    nonce: bytes
    sealed: bytes  # ciphertext || tag

    @classmethod
    def parse(cls, data: bytes | memoryview) -> Envelope:
        """Split an envelope strictly: known format, exact sizes, else `IntegrityError`."""
        if not isinstance(data, bytes | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        if len(data) < OVERHEAD or len(data) > OVERHEAD + MAX_PLAINTEXT:
            raise _fail()
        format_version, key_version = _HEADER.unpack_from(data)
        if format_version != FORMAT_VERSION or key_version == 0:
            raise _fail()
        nonce_end = _HEADER.size + NONCE_SIZE
        return cls(format_version, key_version, data[_HEADER.size : nonce_end], data[nonce_end:])

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.format_version, self.key_version) + self.nonce + self.sealed


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a ciphertext belongs: `owner` (`user:42`), `record` (a credential id, `dek`),
    `field` (`api_secret`, `master`). Part of the associated data, never stored in the envelope.
    """

    owner: str
    record: str
    field: str

    def __post_init__(self) -> None:
        for name in ("owner", "record", "field"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TypeError(f"Binding.{name} must be a non-empty str")
            if len(value.encode("utf-8")) > _MAX_PART:
                raise ValueError(f"Binding.{name} is longer than {_MAX_PART} bytes")

    def associated_data(self, format_version: int, key_version: int) -> bytes:
        """Length-prefixed, so no two different bindings encode to the same bytes."""
        parts = [_AAD_LABEL, *(p.encode("utf-8") for p in (self.owner, self.record, self.field))]
        encoded = b"".join(struct.pack(">H", len(p)) + p for p in parts)
        return encoded + _HEADER.pack(format_version, key_version)


def _check_key_version(key_version: int) -> None:
    if (
        not isinstance(key_version, int)
        or isinstance(key_version, bool)
        or not 0 < key_version <= _MAX_KEY_VERSION
    ):
        raise ValueError(f"key_version must be an int from 1 to {_MAX_KEY_VERSION}")


def _plaintext_view(plaintext: Secret | bytes | bytearray | memoryview) -> memoryview:
    if isinstance(plaintext, str):
        raise TypeError("plaintext must be bytes or a Secret, not str")
    if isinstance(plaintext, Secret):
        raise TypeError("pass a Secret's revealed view, not the Secret itself")
    return memoryview(plaintext)


def _encrypt_with_nonce(
    key: DataKey, plaintext: bytes | bytearray | memoryview, associated_data: bytes,
    key_version: int, nonce: bytes,
) -> bytes:  # fmt: skip
    """The whole encryption with the nonce as a parameter: for known-answer tests only."""
    _check_key_version(key_version)
    view = _plaintext_view(plaintext)
    if len(view) > MAX_PLAINTEXT:
        raise ValueError(f"plaintext is larger than {MAX_PLAINTEXT} bytes")
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    sealed = key.aead().encrypt(nonce, view, associated_data)
    return Envelope(FORMAT_VERSION, key_version, bytes(nonce), sealed).to_bytes()


def encrypt_with_aad(
    key: DataKey, plaintext: bytes | bytearray | memoryview, associated_data: bytes,
    *, key_version: int,
) -> bytes:  # fmt: skip
    """Encrypt under a fresh random nonce with caller-built associated data."""
    return _encrypt_with_nonce(key, plaintext, associated_data, key_version, os.urandom(NONCE_SIZE))


@overload
def decrypt_with_aad(key: DataKey, envelope: Envelope, associated_data: bytes) -> Secret: ...
@overload
def decrypt_with_aad(
    key: DataKey, envelope: Envelope, associated_data: bytes, as_type: type[S]
) -> S: ...
def decrypt_with_aad(
    key: DataKey, envelope: Envelope, associated_data: bytes, as_type: type[Secret] = Secret
) -> Secret:
    """Decrypt into a fresh zeroizing buffer owned by an `as_type`; on any failure the buffer
    is zeroed first."""
    buf = bytearray(len(envelope.sealed) - TAG_SIZE)
    try:
        key.aead().decrypt_into(envelope.nonce, envelope.sealed, associated_data, buf)
    except InvalidTag:
        buf[:] = bytes(len(buf))  # OpenSSL writes plaintext before it checks the tag
        raise _fail() from None
    return as_type.adopt(buf)


def encrypt(
    key: DataKey, plaintext: bytes | bytearray | memoryview, binding: Binding, *, key_version: int
) -> bytes:
    """Encrypt `plaintext` for the place `binding` names, under `key` (version `key_version`)."""
    _check_key_version(key_version)
    aad = binding.associated_data(FORMAT_VERSION, key_version)
    return encrypt_with_aad(key, plaintext, aad, key_version=key_version)


@overload
def decrypt(key: DataKey, envelope: Envelope, binding: Binding) -> Secret: ...
@overload
def decrypt(key: DataKey, envelope: Envelope, binding: Binding, as_type: type[S]) -> S: ...
def decrypt(
    key: DataKey, envelope: Envelope, binding: Binding, as_type: type[Secret] = Secret
) -> Secret:
    """Decrypt an envelope that belongs to `binding`; `IntegrityError` on any mismatch."""
    aad = binding.associated_data(envelope.format_version, envelope.key_version)
    return decrypt_with_aad(key, envelope, aad, as_type)
