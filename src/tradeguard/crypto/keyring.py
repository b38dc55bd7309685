"""Versioned keyrings: the master key (and, later, the audit signing key) and where they come from.

A keyring is a set of numbered key versions with one primary that new encryptions use; older
versions stay to decrypt what they wrapped until it is rewrapped and the version retired
(HashiCorp Vault's transit engine works the same way). Its text form:

    {"tradeguard_keyring": 1, "primary": 2, "keys": {"1": "<base64>", "2": "<base64>"}}

Three sources, chosen by the operator: a file (0600, `..._FILE`), the environment (one base64 key,
version 1), or a command whose standard output is the keyring (the hook for HashiCorp Vault, AWS
Secrets Manager, 1Password `op read`, sops). Parsing goes through `json`, which makes immutable
`str` copies of the base64 text; they live until the garbage collector reuses their memory.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from tradeguard.core.errors import ConfigError
from tradeguard.crypto.keys import KEY_SIZE, DataKey
from tradeguard.secrets import Secret

__all__ = ["Keyring", "KeyringError", "keyring_document", "load_keyring_command", "parse_keyring"]

_DOCUMENT_VERSION = 1
_VERSION_NAME = re.compile(r"[1-9][0-9]{0,9}", re.ASCII)
_COMMAND_TIMEOUT_S = 30
_MAX_OUTPUT = 64 * 1024


class KeyringError(ConfigError):
    """A keyring is missing, malformed, or lacks a version that is needed."""


@dataclass(frozen=True)
class Keyring:
    """Key versions and the primary one. `wipe()` zeroes every key."""

    keys: Mapping[int, DataKey]
    primary: int
    source: str  # where it came from, for messages: "TRADEGUARD_MASTER_KEY_FILE (/etc/...)"

    def __post_init__(self) -> None:
        if self.primary not in self.keys:
            raise KeyringError(f"{self.source}: the primary version {self.primary} has no key")

    @property
    def versions(self) -> list[int]:
        return sorted(self.keys)

    def get(self, version: int) -> DataKey:
        try:
            return self.keys[version]
        except KeyError:
            raise KeyringError(
                f"{self.source} has no key version {version} (it has {self.versions}); "
                "restore the keyring that holds it, or the data it encrypted cannot be read"
            ) from None

    def primary_key(self) -> DataKey:
        return self.keys[self.primary]

    def wipe(self) -> None:
        for key in self.keys.values():
            key.wipe()


def _decode_key(text: object, where: str) -> DataKey:
    if not isinstance(text, str):
        raise KeyringError(f"{where}: a key must be a base64 string")
    try:
        raw = bytearray(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}: a key is not valid base64") from None
    if len(raw) != KEY_SIZE:
        raw[:] = bytes(len(raw))
        raise KeyringError(f"{where}: a key must decode to {KEY_SIZE} bytes, not {len(raw)}")
    return DataKey.adopt(raw)


def _parse_document(document: object, source: str) -> Keyring:
    if not isinstance(document, dict) or document.get("tradeguard_keyring") != _DOCUMENT_VERSION:
        raise KeyringError(
            f'{source}: not a tradeguard keyring (expected {{"tradeguard_keyring": 1, ...}}); '
            "create one with `tradeguard vault master-key init --file PATH`"
        )
    primary, entries = document.get("primary"), document.get("keys")
    if not isinstance(primary, int) or not isinstance(entries, dict) or not entries:
        raise KeyringError(f'{source}: a keyring needs an int "primary" and a "keys" object')
    keys: dict[int, DataKey] = {}
    try:
        for name, text in entries.items():
            if not (_VERSION_NAME.fullmatch(name) and int(name) < 2**32):
                raise KeyringError(f"{source}: key versions are whole numbers from 1, not {name!r}")
            if int(name) in keys:
                raise KeyringError(f"{source}: version {int(name)} appears twice")
            keys[int(name)] = _decode_key(text, f"{source} version {name}")
        return Keyring(keys, primary, source)
    except BaseException:
        for key in keys.values():
            key.wipe()
        raise


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise KeyringError("the keyring names the same entry twice; keep one")
    return dict(pairs)


def parse_keyring(secret: Secret, source: str) -> Keyring:
    """A keyring document, or a single base64 key (which becomes version 1)."""
    with secret.reveal() as view:
        stripped = view.tobytes().strip()
    if not stripped:
        raise KeyringError(f"{source} is empty")
    if stripped[:1] != b"{":
        return Keyring({1: _decode_key(stripped.decode("ascii", "replace"), source)}, 1, source)
    try:
        document = json.loads(stripped, object_pairs_hook=_refuse_duplicates)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise KeyringError(f"{source}: the keyring is not valid JSON") from None
    return _parse_document(document, source)


def keyring_document(keys: Mapping[int, DataKey], primary: int) -> Secret:
    """The text form of a keyring, as a Secret (it is one), ready to write to a 0600 file."""
    encoded = {}
    for version in sorted(keys):
        with keys[version].reveal() as view:
            encoded[str(version)] = base64.b64encode(view).decode("ascii")
    document = {"tradeguard_keyring": _DOCUMENT_VERSION, "primary": primary, "keys": encoded}
    return Secret(json.dumps(document, indent=2) + "\n")


def load_keyring_command(command: str, variable: str) -> Keyring:
    """Run `command` (no shell) and parse its standard output as a keyring."""
    argv = shlex.split(command)
    if not argv:
        raise KeyringError(f"{variable} is empty; set it to a command that prints the keyring")
    source = f"{variable} ({argv[0]})"
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise KeyringError(f"{source}: command not found; check the path in {variable}") from None
    except OSError as e:
        raise KeyringError(f"{source}: cannot run it ({e.strerror}); check {variable}") from None
    except subprocess.TimeoutExpired:
        raise KeyringError(f"{source}: gave no keyring within {_COMMAND_TIMEOUT_S} s") from None
    output = Secret(done.stdout)
    try:
        if done.returncode != 0:
            # stderr is not shown: a secret manager's error output may quote what it fetched.
            raise KeyringError(
                f"{source} exited with status {done.returncode}; run it by hand to see why"
            )
        if len(output) > _MAX_OUTPUT:
            raise KeyringError(f"{source} printed more than 64 KiB; is it the right command?")
        return parse_keyring(output, source)
    finally:
        output.wipe()
