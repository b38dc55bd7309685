"""The master keyring: where it comes from, and the keyring file the CLI creates and rotates.

Sources, exactly one of them: `TRADEGUARD_MASTER_KEY_FILE` (a keyring file, 0600, the usual
choice), `TRADEGUARD_MASTER_KEY` (one base64 key; refused in production unless explicitly
allowed), `TRADEGUARD_MASTER_KEY_COMMAND` (a command that prints the keyring: HashiCorp Vault,
AWS Secrets Manager, 1Password, sops). Only a keyring file can be rotated by tradeguard itself;
with the other two, the operator adds the new version where the key lives.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from tradeguard.config import Settings, read_secret_file
from tradeguard.core.errors import ConfigError
from tradeguard.core.permissions import open_private_file
from tradeguard.crypto import DataKey, Keyring, KeyringError, keyring_document, parse_keyring
from tradeguard.crypto import load_keyring_command as _run_command

__all__ = [
    "FILE_VARIABLE",
    "describe_source",
    "init_keyring_file",
    "keyring_file_path",
    "load_master_keyring",
    "rotate_keyring_file",
]

VARIABLE = "TRADEGUARD_MASTER_KEY"
FILE_VARIABLE = "TRADEGUARD_MASTER_KEY_FILE"
COMMAND_VARIABLE = "TRADEGUARD_MASTER_KEY_COMMAND"


def _source() -> str:
    if FILE_VARIABLE in os.environ:
        return f"{FILE_VARIABLE} ({os.environ[FILE_VARIABLE]})"
    return VARIABLE


def load_master_keyring(settings: Settings) -> Keyring:
    """The master keyring from the configured source, or a `ConfigError` saying how to set one."""
    if settings.master_key is not None and settings.master_key_command:
        raise ConfigError(
            f"both a master key ({_source()}) and {COMMAND_VARIABLE} are set; keep one"
        )
    if settings.master_key_command:
        return _run_command(settings.master_key_command, COMMAND_VARIABLE)
    if settings.master_key is not None:
        return parse_keyring(settings.master_key, _source())
    raise KeyringError(
        f"no master key is configured; create a keyring with `tradeguard vault master-key init "
        f"--file PATH` and set {FILE_VARIABLE}=PATH (or set {COMMAND_VARIABLE})"
    )


def keyring_file_path() -> Path:
    """The keyring file tradeguard may rewrite: only ever the one the operator configured."""
    path = os.environ.get(FILE_VARIABLE)
    if not path:
        raise ConfigError(
            f"the master key does not come from a keyring file ({FILE_VARIABLE} is not set), so "
            "tradeguard cannot add a version itself; add it where the key is kept, as a new "
            'version with a higher number and "primary" pointing at it'
        )
    return Path(path)


def _write_new(path: Path, document: bytes) -> None:
    """Create `path` 0600, refusing to overwrite anything, with the whole content synced."""
    fd = open_private_file(path)
    try:
        view = memoryview(document)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
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


def rotate_keyring_file(path: Path) -> int:
    """Add a new random key version to the keyring file and make it primary; its number.

    The new file is written beside the old one and renamed over it, so a crash leaves either
    the old keyring or the new one, never half of each.
    """
    secret = read_secret_file(FILE_VARIABLE, path)
    try:
        keyring = parse_keyring(secret, f"{FILE_VARIABLE} ({path})")
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


def describe_source(settings: Settings) -> str:
    if settings.master_key_command:
        return f"{COMMAND_VARIABLE} ({shlex.split(settings.master_key_command)[0]})"
    return _source()
