"""Where a keyring comes from (a file, one environment variable, or a command) and the keyring
file tradeguard itself creates and rotates.

Two keyrings use this: the vault master key and the audit signing key. Each names its three
variables (`TRADEGUARD_<NAME>`, `..._FILE`, `..._COMMAND`) in a `KeyringVariables`. Only a
keyring file can be rotated by tradeguard; with the other two sources the operator adds the new
version where the key lives.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from tradeguard.core.errors import ConfigError
from tradeguard.core.permissions import open_private_file, write_fully
from tradeguard.crypto.keyring import (
    Keyring,
    KeyringError,
    keyring_document,
    load_keyring_command,
    parse_keyring,
)
from tradeguard.crypto.keys import DataKey
from tradeguard.secrets import Secret
from tradeguard.secrets.files import read_secret_file

__all__ = [
    "KeyringVariables",
    "describe_source",
    "init_keyring_file",
    "keyring_file_path",
    "load_keyring",
    "rotate_keyring_file",
]


@dataclass(frozen=True)
class KeyringVariables:
    """The settings one keyring is read from, and how to create it, for messages."""

    what: str  # "master key"
    variable: str  # TRADEGUARD_MASTER_KEY
    init_command: str  # `tradeguard vault master-key init --file PATH`

    @property
    def file_variable(self) -> str:
        return f"{self.variable}_FILE"

    @property
    def command_variable(self) -> str:
        return f"{self.variable}_COMMAND"

    def source(self) -> str:
        """Which variable the secret setting came from (the file, else the variable itself)."""
        if self.file_variable in os.environ:
            return f"{self.file_variable} ({os.environ[self.file_variable]})"
        return self.variable


def load_keyring(secret: Secret | None, command: str | None, names: KeyringVariables) -> Keyring:
    """The keyring from the one configured source, or a `ConfigError` saying how to set one."""
    if secret is not None and command:
        raise ConfigError(
            f"both a {names.what} ({names.source()}) and {names.command_variable} are set; keep one"
        )
    if command:
        return load_keyring_command(command, names.command_variable)
    if secret is not None:
        return parse_keyring(secret, names.source())
    raise KeyringError(
        f"no {names.what} is configured; create a keyring with {names.init_command} and set "
        f"{names.file_variable}=PATH (or set {names.command_variable})"
    )


def describe_source(command: str | None, names: KeyringVariables) -> str:
    if command:
        return f"{names.command_variable} ({shlex.split(command)[0]})"
    return names.source()


def keyring_file_path(names: KeyringVariables) -> Path:
    """The keyring file tradeguard may rewrite: only ever the one the operator configured."""
    path = os.environ.get(names.file_variable)
    if not path:
        raise ConfigError(
            f"the {names.what} does not come from a keyring file ({names.file_variable} is not "
            "set), so tradeguard cannot add a version itself; add it where the key is kept, as "
            'a new version with a higher number and "primary" pointing at it'
        )
    return Path(path)


def _write_new(path: Path, document: bytes) -> None:
    """Create `path` 0600, refusing to overwrite anything, with the whole content synced."""
    fd = open_private_file(path)
    try:
        write_fully(fd, document)
    finally:
        os.close(fd)


def init_keyring_file(path: Path) -> None:
    """A new keyring file with one random key as version 1 (primary)."""
    if path.exists():
        raise ConfigError(f"{path} already exists; tradeguard never overwrites a keyring")
    key = DataKey.generate()
    try:
        with keyring_document({1: key}, 1) as document, document.reveal() as view:
            _write_new(path, view.tobytes())
    finally:
        key.wipe()


def rotate_keyring_file(path: Path, names: KeyringVariables) -> int:
    """Add a new random key version to the keyring file and make it primary; its number.

    The new file is written beside the old one and renamed over it, so a crash leaves either
    the old keyring or the new one, never half of each.
    """
    secret = read_secret_file(names.file_variable, path)
    try:
        keyring = parse_keyring(secret, f"{names.file_variable} ({path})")
    finally:
        secret.wipe()
    new_version = max(keyring.versions) + 1
    keys = {**keyring.keys, new_version: DataKey.generate()}
    staging = path.with_name(f".{path.name}.{new_version}.tmp")
    try:
        with keyring_document(keys, new_version) as document, document.reveal() as view:
            staging.unlink(missing_ok=True)
            _write_new(staging, view.tobytes())
        os.replace(staging, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        staging.unlink(missing_ok=True)
        for key in keys.values():
            key.wipe()
    return new_version
