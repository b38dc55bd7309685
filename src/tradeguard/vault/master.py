"""The master keyring that wraps service-mode data keys: its settings and sources.

Sources, exactly one of them: `TRADEGUARD_MASTER_KEY_FILE` (a keyring file, 0600, the usual
choice), `TRADEGUARD_MASTER_KEY` (one base64 key; refused in production unless explicitly
allowed), `TRADEGUARD_MASTER_KEY_COMMAND` (a command that prints the keyring: HashiCorp Vault,
AWS Secrets Manager, 1Password, sops). `crypto/keyring_file.py` does the work.
"""

from __future__ import annotations

from pathlib import Path

from tradeguard.config import Settings
from tradeguard.crypto import Keyring
from tradeguard.crypto import keyring_file as _file
from tradeguard.crypto.keyring_file import KeyringVariables, init_keyring_file

__all__ = [
    "FILE_VARIABLE",
    "MASTER_KEY",
    "init_keyring_file",
    "keyring_file_path",
    "load_master_keyring",
    "rotate_keyring_file",
]

MASTER_KEY = KeyringVariables(
    "master key", "TRADEGUARD_MASTER_KEY", "`tradeguard vault master-key init --file PATH`"
)
FILE_VARIABLE = MASTER_KEY.file_variable


def load_master_keyring(settings: Settings) -> Keyring:
    """The master keyring from the configured source, or a `ConfigError` saying how to set one."""
    return _file.load_keyring(settings.master_key, settings.master_key_command, MASTER_KEY)


def keyring_file_path() -> Path:
    return _file.keyring_file_path(MASTER_KEY)


def rotate_keyring_file(path: Path) -> int:
    return _file.rotate_keyring_file(path, MASTER_KEY)
