"""The one exception hierarchy of tradeguard.

Every error a person can cause (bad settings, wrong permissions, a database from the future) is a
`TradeguardError`. Its message is one line that names what failed and says what to do, and it
never contains a secret: messages are built from names, paths and modes, never from values.
Entry points print the message and exit with `exit_code` (2: bad input or configuration).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataDirError",
    "DatabaseUrlError",
    "InsecurePermissionsError",
    "IntegrityError",
    "SchemaTooNewError",
    "SecretFileError",
    "SecretValueError",
    "SecretWipedError",
    "StorageError",
    "TradeguardError",
    "UnknownCredential",
    "UnknownUser",
    "UnlockThrottled",
    "UnsafeProductionSetting",
    "VaultError",
    "VaultIntegrityError",
    "VaultLocked",
    "WrongPassword",
]


class TradeguardError(Exception):
    """Base of every error tradeguard raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        if "\n" in message:
            raise ValueError("TradeguardError messages are one line")
        super().__init__(message)
        self.message = message


class ConfigError(TradeguardError):
    """A setting is missing, malformed or not allowed here."""


class UnsafeProductionSetting(ConfigError):
    """A setting that is fine for development was given with TRADEGUARD_ENV=production."""


class InsecurePermissionsError(ConfigError):
    """A file or directory that holds secrets is readable by someone else."""


class SecretFileError(ConfigError):
    """A TRADEGUARD_<NAME>_FILE cannot be used (missing, unreadable, wrong owner or mode)."""


class DataDirError(ConfigError):
    """The data directory cannot be created or used."""


class DatabaseUrlError(ConfigError):
    """TRADEGUARD_DATABASE_URL is malformed, unsupported or unsafe."""


class StorageError(TradeguardError):
    """The database cannot be opened or migrated."""


class SchemaTooNewError(StorageError):
    """The database was written by a newer tradeguard than this one."""


class SecretValueError(TradeguardError, ValueError):
    """A value given as a secret has the wrong shape; the message never quotes the value."""


class SecretWipedError(TradeguardError):
    """A secret was used after `wipe()`."""

    exit_code = 1


class IntegrityError(TradeguardError):
    """A ciphertext failed to decrypt: tampered, truncated, moved, or under an unknown key.

    One error for every cause, on purpose: which check failed is not told to an attacker.
    """

    exit_code = 1


class VaultError(TradeguardError):
    """The vault refused an operation; the message says which and what to do."""


class VaultIntegrityError(IntegrityError):
    """A stored credential field failed to decrypt. Names the credential and field, never the
    cause (tampered, truncated, moved, unknown key version all look the same)."""


class VaultLocked(VaultError):
    """A password-mode user's vault is locked (never unlocked, timed out, or locked)."""

    exit_code = 1


class WrongPassword(VaultError):
    """The vault password is wrong, or the user does not exist (one error for both)."""

    exit_code = 1


class UnlockThrottled(VaultError):
    """Too many failed unlocks: wait before trying again."""

    exit_code = 1


class UnknownUser(VaultError):
    """No user by that name."""


class UnknownCredential(VaultError):
    """No credential by that id or name."""
