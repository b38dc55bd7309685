"""Reading secrets from a person (getpass, never echoed) or a script (stdin), never from argv.

A secret on the command line lands in shell history and in `ps` for every user on the host, so
no command takes one as an argument. At a terminal, each value is asked for with echo off; from
a pipe, one value per line (or `--stdin-json` where a command offers it).
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from tradeguard.core.errors import SecretValueError, VaultError
from tradeguard.secrets import Password, Secret
from tradeguard.vault import FieldSpec

__all__ = ["ask_code", "ask_new_password", "ask_password", "entered_fields"]

_MIN_PASSWORD = 12
_MAX_PASSWORD = 1024
_MAX_STDIN = 256 * 1024


def _ask(label: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"{label}: ")
    line = sys.stdin.readline()
    if not line:
        raise VaultError(f"expected {label} on standard input, got end of input")
    return line.rstrip("\r\n")


def ask_password(label: str = "vault password") -> Password:
    return Password(_ask(label))


def ask_code(label: str) -> str:
    """A one-time code (TOTP): not echoed either, it is good for a few seconds."""
    return _ask(label).strip()


def ask_new_password(user: str, what: str = "vault password") -> Password:
    """A new password (`what`: a vault or a login password), typed twice at a terminal, 12 to
    1,024 characters."""
    text = _ask(f"new {what} for {user}")
    if not _MIN_PASSWORD <= len(text) <= _MAX_PASSWORD:
        raise VaultError(
            f"a {what} is {_MIN_PASSWORD} to {_MAX_PASSWORD} characters; a passphrase of "
            "four or more random words is easy to type and hard to guess"
        )
    if sys.stdin.isatty() and getpass.getpass("again: ") != text:
        raise VaultError("the two passwords differ; nothing was changed")
    return Password(text)


def _parse_all(
    specs: Sequence[FieldSpec], value_of: Callable[[FieldSpec], str]
) -> dict[str, Secret]:
    """Each field parsed into its type; if one is refused, those already parsed are wiped."""
    fields: dict[str, Secret] = {}
    try:
        for spec in specs:
            try:
                fields[spec.name] = spec.parse(value_of(spec))
            except SecretValueError as e:
                raise SecretValueError(f"{spec.name}: {e.message}") from None
    except BaseException:
        for secret in fields.values():
            secret.wipe()
        raise
    return fields


def _json_fields(specs: Sequence[FieldSpec]) -> dict[str, Secret]:
    """`{"api_key": "...", "api_secret": "..."}` on standard input, for scripts."""
    raw = sys.stdin.read(_MAX_STDIN + 1)
    if len(raw) > _MAX_STDIN:
        raise VaultError("--stdin-json: input is larger than 256 KiB")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise VaultError(
            f"--stdin-json: not valid JSON (line {e.lineno}, column {e.colno})"
        ) from None
    expected = [s.name for s in specs]
    if not isinstance(data, dict) or set(data) != set(expected):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise VaultError(f"--stdin-json: expected an object with exactly {expected}; got {got}")

    def value_of(spec: FieldSpec) -> str:
        value = data[spec.name]
        if not isinstance(value, str):
            raise VaultError(f"--stdin-json: {spec.name} must be a string")
        return value

    return _parse_all(specs, value_of)


@contextmanager
def entered_fields(specs: Sequence[FieldSpec], stdin_json: bool) -> Iterator[dict[str, Secret]]:
    """A credential's fields from hidden prompts (or `--stdin-json`), wiped when the block ends."""
    fields = _json_fields(specs) if stdin_json else _parse_all(specs, lambda s: _ask(s.label))
    try:
        yield fields
    finally:
        for secret in fields.values():
            secret.wipe()
