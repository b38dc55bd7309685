"""Second-factor (TOTP) secrets, sealed under the master keyring.

They live beside the data keys rather than under them: the server checks a code at login,
before a password-mode user's vault is unlocked, so only the master key can open them. Each is
bound to `user:<id>` / `totp` / `secret`, and its key version sits in `totp_key_version`, so
`vault rewrap` moves them to a new master key and `vault master-key retire` counts them.
"""

from __future__ import annotations

from tradeguard.crypto import Binding, Envelope, Keyring, decrypt, encrypt
from tradeguard.secrets import Token
from tradeguard.vault.users import owner_of

__all__ = ["open_totp_secret", "seal_totp_secret"]


def _binding(user_id: int) -> Binding:
    return Binding(owner_of(user_id), "totp", "secret")


def seal_totp_secret(secret: Token, user_id: int, keyring: Keyring) -> tuple[bytes, int]:
    """The sealed secret and the master key version that sealed it."""
    with secret.reveal() as view:
        sealed = encrypt(
            keyring.primary_key(), view, _binding(user_id), key_version=keyring.primary
        )
    return sealed, keyring.primary


def open_totp_secret(sealed: bytes, user_id: int, keyring: Keyring) -> Token:
    """The secret, or `IntegrityError` (tampered, moved, or under a key no longer held)."""
    envelope = Envelope.parse(sealed)
    return decrypt(keyring.get(envelope.key_version), envelope, _binding(user_id), Token)
