"""Keyrings: the text form, its errors (which never quote a key), and the command source.

Every key is generated at test time; the command tests run real child processes (a small
Python script written into tmp_path and started with sys.executable).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tradeguard.core.errors import ConfigError
from tradeguard.crypto import (
    DataKey,
    Keyring,
    KeyringError,
    keyring_document,
    load_keyring_command,
    parse_keyring,
)
from tradeguard.crypto import keyring as keyring_module
from tradeguard.secrets import Secret

SOURCE = "TRADEGUARD_MASTER_KEY_FILE (/etc/tradeguard/master.key)"
VARIABLE = "TRADEGUARD_MASTER_KEY_COMMAND"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _document(keys: dict[str, object], primary: object = 1, marker: object = 1) -> Secret:
    return Secret(json.dumps({"tradeguard_keyring": marker, "primary": primary, "keys": keys}))


def _raw(key: DataKey) -> bytes:
    with key.reveal() as view:
        return view.tobytes()


def _text(secret: Secret) -> str:
    with secret.reveal_text() as text:
        return text


# -- parse_keyring ---------------------------------------------------------------------------


@pytest.mark.parametrize("decorate", [lambda s: s, lambda s: s + "\n", lambda s: f"  {s}\r\n"])
def test_a_single_base64_key_becomes_version_1(decorate: Callable[[str], str]) -> None:
    raw = os.urandom(32)
    ring = parse_keyring(Secret(decorate(_b64(raw))), SOURCE)
    assert ring.versions == [1]
    assert ring.primary == 1
    assert ring.source == SOURCE
    assert _raw(ring.primary_key()) == raw
    assert ring.get(1) is ring.primary_key()


def test_a_document_with_several_versions_and_a_primary() -> None:
    raws = {1: os.urandom(32), 2: os.urandom(32), 10: os.urandom(32)}
    ring = parse_keyring(_document({str(v): _b64(r) for v, r in raws.items()}, primary=2), SOURCE)
    assert ring.versions == [1, 2, 10]
    assert ring.primary == 2
    assert _raw(ring.primary_key()) == raws[2]
    for version, raw in raws.items():
        key = ring.get(version)
        assert isinstance(key, DataKey)
        assert _raw(key) == raw


def test_the_parsed_keys_are_data_keys_that_do_not_show_their_value() -> None:
    text = _b64(os.urandom(32))
    ring = parse_keyring(Secret(text), SOURCE)
    assert text not in repr(ring)
    assert text not in str(ring.primary_key())


def test_keyring_document_round_trips_through_parse_keyring() -> None:
    keys = {1: DataKey.generate(), 3: DataKey.generate(), 4: DataKey.generate()}
    document = keyring_document(keys, primary=3)
    assert isinstance(document, Secret)
    assert _b64(_raw(keys[1])) not in repr(document)
    text = _text(document)
    assert text.endswith("\n")
    assert json.loads(text)["tradeguard_keyring"] == 1
    ring = parse_keyring(document, SOURCE)
    assert ring.versions == [1, 3, 4]
    assert ring.primary == 3
    for version, key in keys.items():
        assert ring.get(version) == key


def test_a_missing_version_names_the_versions_there_are() -> None:
    ring = parse_keyring(
        _document({"1": _b64(os.urandom(32)), "3": _b64(os.urandom(32))}, primary=3), SOURCE
    )
    with pytest.raises(KeyringError, match=r"no key version 2 \(it has \[1, 3\]\)") as caught:
        ring.get(2)
    assert SOURCE in str(caught.value)


def test_wipe_wipes_every_key() -> None:
    keys = {1: DataKey.generate(), 2: DataKey.generate()}
    buffers = []
    for key in keys.values():
        with key.reveal() as view:
            buffers.append(view.obj)
    ring = Keyring(keys, primary=2, source=SOURCE)
    ring.wipe()
    assert all(key.wiped for key in keys.values())
    assert all(isinstance(b, bytearray) and not any(b) for b in buffers)


def test_a_keyring_whose_primary_has_no_key_is_refused() -> None:
    with pytest.raises(KeyringError, match="primary version 2 has no key"):
        Keyring({1: DataKey.generate()}, primary=2, source=SOURCE)


def test_keyring_error_is_a_config_error() -> None:
    assert issubclass(KeyringError, ConfigError)
    assert KeyringError("x").exit_code == 2


def _bad_documents() -> list[tuple[str, str, str]]:
    """(id, document text, a fragment of the expected message); keys fresh per call."""
    good = _b64(os.urandom(32))
    return [
        ("empty", "", "is empty"),
        ("blank", " \n\t ", "is empty"),
        ("not json", '{"tradeguard_keyring": 1, "primary": 1, "keys": {', "not valid JSON"),
        ("not utf-8", '{"x": "\udcff"}', "not valid JSON"),
        ("json array", f'["{good}"]', "not valid base64"),
        ("no marker", json.dumps({"primary": 1, "keys": {"1": good}}), "not a tradeguard keyring"),
        (
            "wrong marker",
            json.dumps({"tradeguard_keyring": 2, "primary": 1, "keys": {"1": good}}),
            "not a tradeguard keyring",
        ),
        (
            "marker as text",
            json.dumps({"tradeguard_keyring": "1", "primary": 1, "keys": {"1": good}}),
            "not a tradeguard keyring",
        ),
        (
            "no primary",
            json.dumps({"tradeguard_keyring": 1, "keys": {"1": good}}),
            'an int "primary"',
        ),
        (
            "primary as text",
            json.dumps({"tradeguard_keyring": 1, "primary": "1", "keys": {"1": good}}),
            'an int "primary"',
        ),
        (
            "primary without key",
            json.dumps({"tradeguard_keyring": 1, "primary": 2, "keys": {"1": good}}),
            "primary version 2 has no key",
        ),
        ("no keys", json.dumps({"tradeguard_keyring": 1, "primary": 1}), 'a "keys" object'),
        (
            "empty keys",
            json.dumps({"tradeguard_keyring": 1, "primary": 1, "keys": {}}),
            'a "keys" object',
        ),
        (
            "keys as list",
            json.dumps({"tradeguard_keyring": 1, "primary": 1, "keys": [good]}),
            'a "keys" object',
        ),
        (
            "version 0",
            json.dumps({"tradeguard_keyring": 1, "primary": 1, "keys": {"0": good, "1": good}}),
            "whole numbers from 1, not '0'",
        ),
        (
            "version x",
            json.dumps({"tradeguard_keyring": 1, "primary": 1, "keys": {"x": good}}),
            "whole numbers from 1, not 'x'",
        ),
        (
            "version -1",
            json.dumps({"tradeguard_keyring": 1, "primary": 1, "keys": {"-1": good}}),
            "whole numbers from 1",
        ),
        (
            "version 2**32",
            json.dumps({"tradeguard_keyring": 1, "primary": 1, "keys": {str(2**32): good}}),
            "whole numbers from 1",
        ),
        (
            "key not a string",
            json.dumps({"tradeguard_keyring": 1, "primary": 1, "keys": {"1": 12345}}),
            "a key must be a base64 string",
        ),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"), [pytest.param(t, f, id=i) for i, t, f in _bad_documents()]
)
def test_malformed_keyrings_are_refused(text: str, fragment: str) -> None:
    secret = Secret(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(KeyringError, match=fragment) as caught:
        parse_keyring(secret, SOURCE)
    assert str(caught.value).startswith(SOURCE)
    assert "\n" not in str(caught.value)


def _leaky_cases() -> list[tuple[str, str, str]]:
    """(id, document text, key material that must not appear in the message)."""
    short = _b64(os.urandom(16))
    long = _b64(os.urandom(48))
    bad = _b64(os.urandom(32))[:-4] + "!!!="  # base64 with a character outside the alphabet
    unpadded = _b64(os.urandom(32)).rstrip("=")
    good = _b64(os.urandom(32))

    def doc(keys: dict[str, object]) -> str:
        return json.dumps({"tradeguard_keyring": 1, "primary": 1, "keys": keys})

    return [
        ("single key too short", short, short),
        ("single key too long", long, long),
        ("single key bad base64", bad, bad),
        ("single key unpadded", unpadded, unpadded),
        ("document key too short", doc({"1": short}), short),
        ("document key too long", doc({"1": good, "2": long}), long),
        ("document key bad base64", doc({"1": bad}), bad),
        ("good key beside a bad one", doc({"1": good, "2": bad}), good),
        ("good key beside a bad version", doc({"1": good, "x": good}), good),
        ("good key, missing primary", doc({"2": good}), good),
    ]


@pytest.mark.parametrize(
    ("text", "material"), [pytest.param(t, m, id=i) for i, t, m in _leaky_cases()]
)
def test_error_messages_never_contain_key_material(text: str, material: str) -> None:
    with pytest.raises(KeyringError) as caught:
        parse_keyring(Secret(text), SOURCE)
    message = str(caught.value)
    assert material not in message
    assert material[:12] not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


@pytest.mark.parametrize("size", [16, 31, 33, 64])
def test_a_key_of_the_wrong_length_is_refused_with_its_length(size: int) -> None:
    with pytest.raises(KeyringError, match=f"32 bytes, not {size}"):
        parse_keyring(Secret(_b64(os.urandom(size))), SOURCE)


def test_a_unicode_digit_version_is_a_keyring_error() -> None:
    with pytest.raises(KeyringError):
        parse_keyring(_document({"1": _b64(os.urandom(32)), "²": _b64(os.urandom(32))}), SOURCE)


@pytest.mark.parametrize("alias", ["01", "\u0661"])
def test_two_names_for_one_version_are_refused(alias: str) -> None:
    with pytest.raises(KeyringError):
        parse_keyring(_document({"1": _b64(os.urandom(32)), alias: _b64(os.urandom(32))}), SOURCE)


# -- load_keyring_command --------------------------------------------------------------------


def _script(tmp_path: Path, body: str, name: str = "keyring_helper.py") -> str:
    """A command line that runs `body` as a Python script with this interpreter."""
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


def _document_file(tmp_path: Path, keys: dict[int, DataKey], primary: int) -> Path:
    path = tmp_path / "keyring.json"
    path.write_text(_text(keyring_document(keys, primary)), encoding="utf-8")
    path.chmod(0o600)
    return path


def test_a_command_that_prints_a_keyring(tmp_path: Path) -> None:
    keys = {1: DataKey.generate(), 2: DataKey.generate()}
    document = _document_file(tmp_path, keys, primary=2)
    command = _script(
        tmp_path,
        "import sys\nsys.stdout.write(open(sys.argv[1], encoding='utf-8').read())\n",
    )
    ring = load_keyring_command(f"{command} {shlex.quote(str(document))}", VARIABLE)
    assert ring.versions == [1, 2]
    assert ring.primary == 2
    assert ring.get(1) == keys[1]
    assert ring.get(2) == keys[2]
    assert ring.source == f"{VARIABLE} ({sys.executable})"


def test_a_command_that_prints_a_single_key(tmp_path: Path) -> None:
    raw = os.urandom(32)
    key_file = tmp_path / "key.b64"
    key_file.write_text(_b64(raw) + "\n", encoding="utf-8")
    command = _script(tmp_path, "import sys\nprint(open(sys.argv[1]).read().strip())\n")
    ring = load_keyring_command(f"{command} {shlex.quote(str(key_file))}", VARIABLE)
    assert ring.versions == [1]
    assert _raw(ring.primary_key()) == raw


def test_the_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "shell-ran"
    command = _script(tmp_path, "import sys\nprint(sys.argv[1:])\n")
    with pytest.raises(KeyringError):
        load_keyring_command(f"{command} ; touch {shlex.quote(str(marker))}", VARIABLE)
    assert not marker.exists()


def test_the_command_gets_no_standard_input(tmp_path: Path) -> None:
    key = _b64(os.urandom(32))
    command = _script(
        tmp_path,
        f"import sys\nassert sys.stdin.read() == ''\nprint({key!r})\n",
    )
    assert load_keyring_command(command, VARIABLE).versions == [1]


def test_a_failing_command_does_not_show_its_output(tmp_path: Path) -> None:
    leaked = "vault-token-" + secrets.token_urlsafe(24)
    printed = _b64(os.urandom(32))
    command = _script(
        tmp_path,
        "import sys\n"
        f"print({printed!r})\n"
        f"print('error: permission denied reading secret {leaked}', file=sys.stderr)\n"
        "sys.exit(3)\n",
    )
    with pytest.raises(KeyringError, match="exited with status 3") as caught:
        load_keyring_command(command, VARIABLE)
    message = str(caught.value)
    assert VARIABLE in message
    assert leaked not in message
    assert leaked[-12:] not in message
    assert printed not in message
    assert "permission denied" not in message


def test_a_command_killed_by_a_signal_is_an_error(tmp_path: Path) -> None:
    command = _script(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    with pytest.raises(KeyringError, match="exited with status -15"):
        load_keyring_command(command, VARIABLE)


def test_a_command_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-keyring-helper"
    with pytest.raises(KeyringError, match="command not found") as caught:
        load_keyring_command(f"{missing} --field master", VARIABLE)
    assert VARIABLE in str(caught.value)
    assert "--field" not in str(caught.value)  # arguments may carry tokens; only argv[0] shown


@pytest.mark.parametrize("kind", ["not executable", "directory", "empty program name"])
def test_a_command_that_cannot_be_run_is_a_keyring_error(tmp_path: Path, kind: str) -> None:
    if kind == "empty program name":
        command = "'' --field master"
    elif kind == "directory":
        (tmp_path / "a-directory").mkdir()
        command = str(tmp_path / "a-directory")
    else:
        script = tmp_path / "not-executable.sh"
        script.write_text("#!/bin/sh\necho x\n", encoding="utf-8")
        script.chmod(0o600)
        command = str(script)
    with pytest.raises(KeyringError, match=VARIABLE):
        load_keyring_command(command, VARIABLE)


@pytest.mark.parametrize("command", ["", "   ", "\t\n"])
def test_an_empty_command_is_refused(command: str) -> None:
    with pytest.raises(KeyringError, match=f"{VARIABLE} is empty"):
        load_keyring_command(command, VARIABLE)


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        ("hello world", "not valid base64"),
        ("", "is empty"),
        ('{"not": "a keyring"}', "not a tradeguard keyring"),
        ("{broken json", "not valid JSON"),
    ],
)
def test_output_that_is_not_a_keyring(tmp_path: Path, output: str, fragment: str) -> None:
    command = _script(tmp_path, f"import sys\nsys.stdout.write({output!r})\n")
    with pytest.raises(KeyringError, match=fragment) as caught:
        load_keyring_command(command, VARIABLE)
    assert str(caught.value).startswith(f"{VARIABLE} (")


def test_output_larger_than_64_kib_is_refused(tmp_path: Path) -> None:
    command = _script(tmp_path, "import sys\nsys.stdout.write('A' * (64 * 1024 + 1))\n")
    with pytest.raises(KeyringError, match="more than 64 KiB"):
        load_keyring_command(command, VARIABLE)


def test_a_command_that_hangs_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit is 30 s; the path taken is the same with a shorter one.
    monkeypatch.setattr(keyring_module, "_COMMAND_TIMEOUT_S", 0.5)
    command = _script(tmp_path, "import time\ntime.sleep(30)\n")
    with pytest.raises(KeyringError, match="gave no keyring within"):
        load_keyring_command(command, VARIABLE)
