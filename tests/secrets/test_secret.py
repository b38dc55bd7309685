"""Secret: what a person can and cannot do with one by accident."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import secrets

import pytest

from tradeguard.core.errors import SecretWipedError
from tradeguard.secrets import ApiKey, ApiSecret, Secret


def test_every_text_form_is_masked() -> None:
    value = secrets.token_urlsafe(32)
    s = ApiSecret(value)
    percent = ["%s" % s, "%r" % (s,)]  # noqa: UP031 - %-formatting is what logging uses
    renderings = [repr(s), str(s), f"{s}", f"{s!r}", f"{s:>40}", *percent, str([s])]
    for text in renderings:
        assert value not in text
        assert value[:3] not in text.replace("ApiSecret", "")
    assert repr(s) == f"ApiSecret(***, len={len(value)})"


def test_short_api_key_shows_no_character_long_one_shows_three() -> None:
    short = ApiKey("ABCDEFGHIJKLMNO")  # 15 characters
    long = ApiKey("XYZ" + secrets.token_hex(16))
    assert repr(short) == "ApiKey(***, len=15)"
    assert repr(long) == f"ApiKey(XYZ***, len={len(long)})"


def test_plain_secret_never_shows_a_prefix_however_long() -> None:
    assert repr(Secret("A" * 200)) == "Secret(***, len=200)"


def test_logging_a_secret_shows_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    value = secrets.token_hex(20)
    with caplog.at_level(logging.INFO):
        logging.getLogger("tradeguard.test").info("using %s and %r", Secret(value), Secret(value))
    assert value not in caplog.text
    assert "Secret(***, len=40)" in caplog.text


def test_reveal_gives_a_read_only_view_released_after_the_block() -> None:
    s = Secret(b"\x00\x01secret-bytes")
    with s.reveal() as view:
        assert view.tobytes() == b"\x00\x01secret-bytes"
        assert view.readonly
        kept = view
    with pytest.raises(ValueError, match="released"):
        kept.tobytes()


def test_reveal_text_decodes_utf8() -> None:
    with Secret("pässwörd-ü").reveal_text() as text:
        assert text == "pässwörd-ü"


def test_wipe_zeroes_the_buffer_in_place() -> None:
    s = Secret("correct horse battery staple")
    with s.reveal() as view:
        buffer = view.obj  # the bytearray the Secret owns
    s.wipe()
    assert isinstance(buffer, bytearray)
    assert bytes(buffer) == bytes(len("correct horse battery staple"))
    assert s.wiped
    assert repr(s) == "Secret(wiped, len=28)"


def test_reading_after_wipe_raises() -> None:
    s = Secret("value-123456")
    s.wipe()
    with pytest.raises(SecretWipedError), s.reveal():
        pass
    with pytest.raises(SecretWipedError):
        _ = s == Secret("value-123456")


def test_context_manager_wipes_on_exit() -> None:
    with Secret("temporary-value") as s, s.reveal() as view:
        buffer = view.obj
    assert s.wiped
    assert isinstance(buffer, bytearray)
    assert not any(buffer)


def test_wipe_works_while_a_view_is_still_exported() -> None:
    s = Secret("still-being-read")
    with s.reveal() as view:
        s.wipe()
        assert view.tobytes() == bytes(16)


def test_pickle_copy_and_deepcopy_are_refused() -> None:
    s = Secret("do-not-duplicate")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(s, protocol=protocol)
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.copy(s)
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.deepcopy({"nested": [s]})


def test_json_dumps_is_refused_and_default_str_stays_masked() -> None:
    s = Secret("json-secret-value")
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps({"key": s})
    assert "json-secret-value" not in json.dumps({"key": s}, default=str)


def test_equality_is_between_secrets_only() -> None:
    a, b, c = Secret("same-value-x"), Secret("same-value-x"), Secret("other-value")
    assert a == b
    assert a != c
    assert Secret("short") != Secret("same-value-x")  # lengths differ: still just False
    for plain in ("same-value-x", b"same-value-x", bytearray(b"same-value-x")):
        with pytest.raises(TypeError, match="constant time"):
            _ = a == plain
    assert a != 42  # unrelated types compare unequal, as usual


def test_secrets_are_unhashable() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        hash(Secret("x"))


def test_construction_rejects_wrong_types_and_copies_the_input() -> None:
    with pytest.raises(TypeError, match="str or bytes-like"):
        Secret(12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="already a Secret"):
        Secret(Secret("x"))  # type: ignore[arg-type]
    source = bytearray(b"mutable-source")
    s = Secret(source)
    source[:] = b"X" * len(source)
    with s.reveal() as view:
        assert view.tobytes() == b"mutable-source"


def test_no_attribute_can_be_added_to_smuggle_the_value() -> None:
    with pytest.raises(AttributeError):
        Secret("x").plaintext = "x"  # type: ignore[attr-defined]
