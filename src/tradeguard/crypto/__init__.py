"""Cryptography at rest: one envelope recipe, Argon2id, versioned keyrings.

Nothing outside this package touches AES-GCM, nonces or Argon2 parameters.
"""

from tradeguard.crypto.envelope import Binding, Envelope, decrypt, encrypt
from tradeguard.crypto.kdf import DEFAULT_PARAMS, MINIMUM_PARAMS, KdfParams, derive_key, new_salt
from tradeguard.crypto.keyring import (
    Keyring,
    KeyringError,
    keyring_document,
    load_keyring_command,
    parse_keyring,
)
from tradeguard.crypto.keys import DataKey

__all__ = [
    "DEFAULT_PARAMS",
    "MINIMUM_PARAMS",
    "Binding",
    "DataKey",
    "Envelope",
    "KdfParams",
    "Keyring",
    "KeyringError",
    "decrypt",
    "derive_key",
    "encrypt",
    "keyring_document",
    "load_keyring_command",
    "new_salt",
    "parse_keyring",
]
