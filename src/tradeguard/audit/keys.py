"""The audit key: signs tree heads, keys the per-entry MACs, peppers actor hashes.

It is a versioned keyring like the master key, and deliberately not the master key: someone who
can read credentials must not also be able to rewrite history, and the other way round. Sources
(one of): `TRADEGUARD_AUDIT_KEY_FILE` (a keyring file, 0600), `TRADEGUARD_AUDIT_KEY` (one base64
key; refused in production unless `TRADEGUARD_ALLOW_ENV_AUDIT_KEY=1`), or
`TRADEGUARD_AUDIT_KEY_COMMAND`.

Each version is a 32-byte seed. HKDF-SHA256 derives three independent keys from it (distinct
`info` strings): the Ed25519 key that signs tree heads, the HMAC key of the entry MACs, and the
actor pepper. Old versions stay in the keyring: their public keys check old tree heads, their MAC
keys check old entries, and the pepper version (fixed at the first append) keeps actor hashes
comparable across rotations.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tradeguard.config import Settings
from tradeguard.crypto import Keyring, KeyringError
from tradeguard.crypto.keyring_file import KeyringVariables, load_keyring

__all__ = [
    "AUDIT_KEY",
    "AuditKeys",
    "EntryMacKey",
    "MacKey",
    "PublicKeys",
    "SignatureChecker",
    "entry_mac",
    "load_audit_keys",
]

AUDIT_KEY = KeyringVariables(
    "audit key", "TRADEGUARD_AUDIT_KEY", "`tradeguard audit key init --file PATH`"
)
_SIGNING = b"tradeguard audit v1: tree head signing key"
_MAC = b"tradeguard audit v1: entry mac key"
_PEPPER = b"tradeguard audit v1: actor pepper"
_SHA256_BLOCK = 64


def _derive(seed: memoryview, info: bytes) -> bytearray:
    return bytearray(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seed))


class MacKey:
    """HMAC-SHA256 (RFC 2104) under one key, with the padded-key hash states computed once.

    `hmac.digest` sets the key up again on every call (about 4 us with OpenSSL 3); copying the
    two prepared SHA-256 states costs a third of that, on every append (the actor hash).
    The result is plain HMAC-SHA256: tests check it against `hmac` and Wycheproof's vectors.
    The prepared states hold key material in hashlib objects, which cannot be zeroed; they
    live as long as the process's audit keys do.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes | bytearray) -> None:
        if len(key) > _SHA256_BLOCK:
            raise ValueError("MacKey takes keys of at most 64 bytes")
        padded = bytearray(key) + bytes(_SHA256_BLOCK - len(key))
        try:
            self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
            self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        finally:
            padded[:] = bytes(len(padded))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class EntryMacKey:
    """The entry MAC: keyed BLAKE2b-256 (RFC 7693's MAC mode) of seq (8 bytes) || leaf hash.

    BLAKE2b takes a key natively, so one hash per entry instead of HMAC's two; `verify`
    computes one per entry of the log.
    """

    __slots__ = ("_base",)

    def __init__(self, key: bytes | bytearray) -> None:
        self._base = hashlib.blake2b(key=bytes(key), digest_size=32, person=b"tradeguard-audit")

    def mac(self, seq: int, leaf_hash: bytes) -> bytes:
        h = self._base.copy()
        h.update(seq.to_bytes(8, "big") + leaf_hash)
        return h.digest()

    def macs(self, first_seq: int, leaf_hashes: list[bytes]) -> list[bytes]:
        """The MACs of consecutive entries from `first_seq`."""
        copy = self._base.copy
        out = []
        for seq, leaf in enumerate(leaf_hashes, first_seq):
            h = copy()
            h.update(seq.to_bytes(8, "big") + leaf)
            out.append(h.digest())
        return out


class _Version:
    __slots__ = ("mac_key", "pepper", "public", "signing")

    def __init__(self, seed: memoryview) -> None:
        signing_seed = _derive(seed, _SIGNING)
        mac_seed = _derive(seed, _MAC)
        pepper_seed = _derive(seed, _PEPPER)
        try:
            self.signing = Ed25519PrivateKey.from_private_bytes(bytes(signing_seed))
            self.mac_key = EntryMacKey(mac_seed)
            self.pepper = MacKey(pepper_seed)
        finally:
            for derived in (signing_seed, mac_seed, pepper_seed):
                derived[:] = bytes(len(derived))
        self.public = self.signing.public_key()


class AuditKeys:
    """The derived audit keys of every keyring version. The keyring itself is not kept."""

    def __init__(self, keyring: Keyring) -> None:
        self.source = keyring.source
        self.primary = keyring.primary
        self._versions: dict[int, _Version] = {}
        for version, key in keyring.keys.items():
            with key.reveal() as seed:
                self._versions[version] = _Version(seed)

    @property
    def versions(self) -> list[int]:
        return sorted(self._versions)

    def _get(self, version: int) -> _Version:
        try:
            return self._versions[version]
        except KeyError:
            raise KeyringError(
                f"the audit key ({self.source}) has no version {version} (it has "
                f"{self.versions}); restore the keyring that holds it"
            ) from None

    def has(self, version: int) -> bool:
        return version in self._versions

    def sign(self, message: bytes) -> tuple[int, bytes]:
        """Sign with the primary version: (version, signature)."""
        return self.primary, self._versions[self.primary].signing.sign(message)

    def check_signature(self, version: int, message: bytes, signature: bytes) -> bool:
        try:
            self._get(version).public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def public_key(self, version: int) -> Ed25519PublicKey:
        return self._get(version).public

    def public_key_text(self, version: int) -> str:
        raw = self.public_key(version).public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode("ascii")

    def mac_key(self, version: int) -> EntryMacKey:
        return self._get(version).mac_key

    def pepper(self, version: int) -> MacKey:
        return self._get(version).pepper


class SignatureChecker(Protocol):
    """What checking a signed tree head needs: `AuditKeys` (the operator) or `PublicKeys`
    (an outside auditor, who holds only the published public keys)."""

    def has(self, version: int) -> bool: ...

    def check_signature(self, version: int, message: bytes, signature: bytes) -> bool: ...


class PublicKeys:
    """Published audit public keys by version, as `tradeguard audit key public` prints them:
    `{"1": "<base64 Ed25519 public key>", ...}`."""

    def __init__(self, keys: Mapping[int, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def parse(cls, document: object, where: str) -> PublicKeys:
        if not isinstance(document, dict) or not document:
            raise KeyringError(f'{where}: expected {{"1": "<base64 public key>", ...}}')
        keys: dict[int, Ed25519PublicKey] = {}
        for name, text in document.items():
            if not (isinstance(name, str) and name.isdigit() and isinstance(text, str)):
                raise KeyringError(f"{where}: versions are whole numbers, keys base64 strings")
            try:
                raw = base64.b64decode(text, validate=True)
                keys[int(name)] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError:
                raise KeyringError(
                    f"{where}: version {name} is not an Ed25519 public key"
                ) from None
        return cls(keys)

    def has(self, version: int) -> bool:
        return version in self._keys

    def check_signature(self, version: int, message: bytes, signature: bytes) -> bool:
        try:
            self._keys[version].verify(signature, message)
        except (KeyError, InvalidSignature):
            return False
        return True


def entry_mac(key: EntryMacKey, seq: int, leaf_hash: bytes) -> bytes:
    """The entry MAC: binds a leaf to its seq, so a moved or rewritten row shows where."""
    return key.mac(seq, leaf_hash)


def load_audit_keys(settings: Settings) -> AuditKeys:
    """The audit keys from the configured source, or a `ConfigError` saying how to set one."""
    keyring = load_keyring(settings.audit_key, settings.audit_key_command, AUDIT_KEY)
    try:
        return AuditKeys(keyring)
    finally:
        keyring.wipe()  # only the derived keys are kept
