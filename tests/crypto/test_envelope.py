"""The envelope: what round-trips, and every way a stored ciphertext can be tampered with.

Properties run under Hypothesis; the small, exhaustive ones (every bit flip, every truncation of
one envelope) run in full. Every key is generated at test time.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from types import TracebackType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.core.errors import IntegrityError, SecretValueError, SecretWipedError
from tradeguard.crypto import Binding, DataKey, Envelope, decrypt, encrypt
from tradeguard.crypto.envelope import (
    FORMAT_VERSION,
    MAX_PLAINTEXT,
    NONCE_SIZE,
    OVERHEAD,
    TAG_SIZE,
    decrypt_with_aad,
    encrypt_with_aad,
)
from tradeguard.secrets import ApiSecret, Secret

HEADER_SIZE = 5  # format version (1) + key version (4)
MAX_KEY_VERSION = 2**32 - 1
BINDING = Binding("user:42", "credential:7", "api_secret")

components = st.text(min_size=1, max_size=24)
bindings = st.builds(Binding, owner=components, record=components, field=components)
key_versions = st.integers(min_value=1, max_value=MAX_KEY_VERSION)
plaintexts = st.binary(max_size=4096)
FIELDS = ("owner", "record", "field")


def _revealed(secret: Secret) -> bytes:
    with secret.reveal() as view:
        return view.tobytes()


def _open(key: DataKey, data: bytes, binding: Binding) -> Secret:
    plaintext: Secret = decrypt(key, Envelope.parse(data), binding)
    return plaintext


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _replace(binding: Binding, name: str, value: str) -> Binding:
    parts = {n: getattr(binding, n) for n in FIELDS}
    parts[name] = value
    return Binding(**parts)


# -- round trip ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(plaintext=plaintexts, binding=bindings, key_version=key_versions)
def test_round_trip(plaintext: bytes, binding: Binding, key_version: int) -> None:
    key = DataKey.generate()
    data = encrypt(key, plaintext, binding, key_version=key_version)
    assert len(data) == len(plaintext) + OVERHEAD
    envelope = Envelope.parse(data)
    assert (envelope.format_version, envelope.key_version) == (FORMAT_VERSION, key_version)
    assert data[:HEADER_SIZE] == struct.pack(">BI", FORMAT_VERSION, key_version)
    assert envelope.to_bytes() == data
    assert _revealed(decrypt(key, envelope, binding)) == plaintext


def test_round_trip_of_every_bytes_like_plaintext_and_the_limits() -> None:
    key = DataKey.generate()
    for plaintext in (b"", b"x", bytearray(b"abc"), memoryview(b"view"), os.urandom(MAX_PLAINTEXT)):
        data = encrypt(key, plaintext, BINDING, key_version=MAX_KEY_VERSION)
        assert _revealed(_open(key, data, BINDING)) == bytes(plaintext)
    assert Envelope.parse(memoryview(data)).to_bytes() == data


def test_a_secret_plaintext_is_encrypted_through_its_revealed_view() -> None:
    key = DataKey.generate()
    value = Secret(os.urandom(40))
    with value.reveal() as view:
        data = encrypt(key, view, BINDING, key_version=1)
    assert _open(key, data, BINDING) == value


def test_the_plaintext_does_not_appear_in_the_envelope() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(64)
    data = encrypt(key, plaintext, BINDING, key_version=1)
    assert plaintext not in data
    assert plaintext[:16] not in data


# -- tampering -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=256), binding=bindings, data=st.data())
def test_any_single_bit_flip_fails(plaintext: bytes, binding: Binding, data: st.DataObject) -> None:
    key = DataKey.generate()
    envelope = encrypt(key, plaintext, binding, key_version=1)
    bit = data.draw(st.integers(min_value=0, max_value=len(envelope) * 8 - 1), label="bit")
    with pytest.raises(IntegrityError):
        _open(key, _flip(envelope, bit), binding)


@pytest.mark.parametrize(
    ("region", "start", "end"),
    [
        ("format version", 0, 1),
        ("key version", 1, HEADER_SIZE),
        ("nonce", HEADER_SIZE, HEADER_SIZE + NONCE_SIZE),
        ("ciphertext", HEADER_SIZE + NONCE_SIZE, -TAG_SIZE),
        ("tag", -TAG_SIZE, None),
    ],
)
def test_every_bit_flip_in_each_region_fails(region: str, start: int, end: int | None) -> None:
    key = DataKey.generate()
    envelope = encrypt(key, os.urandom(24), BINDING, key_version=3)
    first, last, _ = slice(start, end).indices(len(envelope))
    assert last > first, region
    for bit in range(first * 8, last * 8):
        with pytest.raises(IntegrityError):
            _open(key, _flip(envelope, bit), BINDING)


@settings(max_examples=200, deadline=None)
@given(binding=bindings, name=st.sampled_from(FIELDS), other=components)
def test_any_change_of_a_binding_component_fails(binding: Binding, name: str, other: str) -> None:
    other_binding = _replace(binding, name, other)
    key = DataKey.generate()
    plaintext = os.urandom(32)
    data = encrypt(key, plaintext, binding, key_version=1)
    if other_binding == binding:
        assert _revealed(_open(key, data, other_binding)) == plaintext
        return
    with pytest.raises(IntegrityError):
        _open(key, data, other_binding)


@pytest.mark.parametrize(
    "elsewhere",
    [
        Binding("user:43", "credential:7", "api_secret"),  # another user's row
        Binding("user:42", "credential:8", "api_secret"),  # another credential of the same user
        Binding("user:42", "credential:7", "api_key"),  # another field of the same row
        Binding("user:42", "credential:7", "api_secret "),  # one trailing space
        Binding("user:4", "2credential:7", "api_secret"),  # same concatenation, other split
        Binding("user:42credential:7", "api", "_secret"),  # idem
    ],
)
def test_a_ciphertext_moved_to_another_place_fails(elsewhere: Binding) -> None:
    key = DataKey.generate()
    data = encrypt(key, b"an api secret", BINDING, key_version=1)
    with pytest.raises(IntegrityError):
        _open(key, data, elsewhere)
    assert _revealed(_open(key, data, BINDING)) == b"an api secret"


def test_ciphertexts_swapped_between_two_fields_fail_both_ways() -> None:
    key = DataKey.generate()
    api_key = Binding("user:1", "cred:1", "api_key")
    api_secret = Binding("user:1", "cred:1", "api_secret")
    sealed_key = encrypt(key, b"key-part", api_key, key_version=1)
    sealed_secret = encrypt(key, b"secret-part", api_secret, key_version=1)
    with pytest.raises(IntegrityError):
        _open(key, sealed_key, api_secret)
    with pytest.raises(IntegrityError):
        _open(key, sealed_secret, api_key)


@settings(max_examples=200, deadline=None)
@given(key_version=key_versions, relabelled=key_versions)
def test_relabelling_the_key_version_fails(key_version: int, relabelled: int) -> None:
    key = DataKey.generate()
    data = encrypt(key, b"wrapped dek", BINDING, key_version=key_version)
    forged = struct.pack(">BI", FORMAT_VERSION, relabelled) + data[HEADER_SIZE:]
    if relabelled == key_version:
        assert _revealed(_open(key, forged, BINDING)) == b"wrapped dek"
        return
    # The same key, the header says another version: the header is part of the AAD.
    with pytest.raises(IntegrityError):
        _open(key, forged, BINDING)


def test_every_truncation_and_any_extension_fails() -> None:
    key = DataKey.generate()
    data = encrypt(key, os.urandom(40), BINDING, key_version=1)
    for length in range(len(data)):
        with pytest.raises(IntegrityError):
            _open(key, data[:length], BINDING)
    for suffix in (b"\0", os.urandom(1), os.urandom(TAG_SIZE)):
        with pytest.raises(IntegrityError):
            _open(key, data + suffix, BINDING)


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=512), data=st.data())
def test_truncation_at_any_length_fails(plaintext: bytes, data: st.DataObject) -> None:
    key = DataKey.generate()
    envelope = encrypt(key, plaintext, BINDING, key_version=1)
    length = data.draw(st.integers(min_value=0, max_value=len(envelope) - 1), label="length")
    with pytest.raises(IntegrityError):
        _open(key, envelope[:length], BINDING)


def test_an_empty_plaintext_envelope_is_exactly_the_overhead() -> None:
    key = DataKey.generate()
    data = encrypt(key, b"", BINDING, key_version=1)
    assert len(data) == OVERHEAD
    assert _revealed(_open(key, data, BINDING)) == b""
    with pytest.raises(IntegrityError):
        Envelope.parse(data[:-1])


def test_an_unknown_format_version_fails() -> None:
    key = DataKey.generate()
    data = encrypt(key, b"payload", BINDING, key_version=1)
    for version in (v for v in range(256) if v != FORMAT_VERSION):
        with pytest.raises(IntegrityError):
            _open(key, bytes([version]) + data[1:], BINDING)
    # Built directly (not parsed), a future version still fails: it is part of the AAD.
    parsed = Envelope.parse(data)
    future = Envelope(FORMAT_VERSION + 1, parsed.key_version, parsed.nonce, parsed.sealed)
    with pytest.raises(IntegrityError):
        decrypt(key, future, BINDING)


def test_key_version_zero_in_the_header_fails() -> None:
    key = DataKey.generate()
    data = encrypt(key, b"payload", BINDING, key_version=1)
    with pytest.raises(IntegrityError):
        Envelope.parse(struct.pack(">BI", FORMAT_VERSION, 0) + data[HEADER_SIZE:])


def test_an_envelope_longer_than_the_largest_plaintext_fails() -> None:
    data = struct.pack(">BI", FORMAT_VERSION, 1) + os.urandom(NONCE_SIZE + MAX_PLAINTEXT + 17)
    with pytest.raises(IntegrityError):
        Envelope.parse(data)


@settings(max_examples=100, deadline=None)
@given(plaintext=st.binary(max_size=256))
def test_the_wrong_key_fails(plaintext: bytes) -> None:
    data = encrypt(DataKey.generate(), plaintext, BINDING, key_version=1)
    with pytest.raises(IntegrityError):
        _open(DataKey.generate(), data, BINDING)


def test_every_failure_raises_the_same_message() -> None:
    key = DataKey.generate()
    plaintext = b"the plaintext"
    data = encrypt(key, plaintext, BINDING, key_version=1)
    attempts: list[Callable[[], Secret]] = [
        lambda: _open(DataKey.generate(), data, BINDING),
        lambda: _open(key, _flip(data, 8 * len(data) - 1), BINDING),
        lambda: _open(key, data[:-1], BINDING),
        lambda: _open(key, b"\x02" + data[1:], BINDING),
        lambda: _open(key, data, Binding("user:1", "credential:7", "api_secret")),
    ]
    messages = set()
    for attempt in attempts:
        with pytest.raises(IntegrityError) as caught:
            attempt()
        messages.add(str(caught.value))
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__ or caught.value.__context__ is None
    assert len(messages) == 1
    assert plaintext.decode() not in messages.pop()


# -- nonces and results ----------------------------------------------------------------------


def test_nonces_are_unique_across_many_encryptions() -> None:
    key = DataKey.generate()
    envelopes = [encrypt(key, b"same plaintext", BINDING, key_version=1) for _ in range(5000)]
    nonces = {Envelope.parse(e).nonce for e in envelopes}
    assert len(nonces) == len(envelopes)
    assert len(set(envelopes)) == len(envelopes)
    assert all(len(n) == NONCE_SIZE for n in nonces)


def test_decrypt_returns_a_secret_whose_buffer_can_be_wiped() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(48)
    result = _open(key, encrypt(key, plaintext, BINDING, key_version=1), BINDING)
    assert type(result) is Secret
    assert plaintext.hex() not in repr(result)
    with result.reveal() as view:
        assert view.tobytes() == plaintext
        buffer = view.obj
    result.wipe()
    assert isinstance(buffer, bytearray)
    assert bytes(buffer) == bytes(len(plaintext))
    assert result.wiped
    with pytest.raises(SecretWipedError), result.reveal():
        pass


def _frame_bytearrays(tb: TracebackType | None, function: str) -> list[bytearray]:
    found = []
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function:
            found += [v for v in tb.tb_frame.f_locals.values() if isinstance(v, bytearray)]
        tb = tb.tb_next
    return found


def test_on_failure_the_decrypted_bytes_are_zeroed_and_nothing_is_returned() -> None:
    # OpenSSL writes the plaintext into the output buffer before it checks the tag: with only
    # the tag flipped, the buffer held the real plaintext. It must be zero when the error leaves.
    key = DataKey.generate()
    plaintext = os.urandom(64)
    data = encrypt(key, plaintext, BINDING, key_version=1)
    with pytest.raises(IntegrityError) as caught:
        _open(key, _flip(data, 8 * len(data) - 1), BINDING)
    buffers = _frame_bytearrays(caught.tb, "decrypt_with_aad")
    assert [len(b) for b in buffers] == [len(plaintext)]
    assert bytes(buffers[0]) == bytes(len(plaintext))


def test_decrypt_into_a_data_key_unwraps_a_dek() -> None:
    master, dek = DataKey.generate(), DataKey.generate()
    binding = Binding("user:42", "dek", "master")
    with dek.reveal() as view:
        wrapped = encrypt(master, view, binding, key_version=2)
    unwrapped = decrypt(master, Envelope.parse(wrapped), binding, DataKey)
    assert type(unwrapped) is DataKey
    assert unwrapped == dek
    data = encrypt(unwrapped, b"field", BINDING, key_version=1)
    assert _revealed(_open(dek, data, BINDING)) == b"field"


def test_decrypt_into_a_kind_keeps_the_kind() -> None:
    key = DataKey.generate()
    value = os.urandom(16).hex()
    data = encrypt(key, value.encode(), BINDING, key_version=1)
    result = decrypt(key, Envelope.parse(data), BINDING, ApiSecret)
    assert type(result) is ApiSecret
    assert value not in repr(result)
    assert result == Secret(value)


def test_a_plaintext_the_target_type_refuses_is_zeroed() -> None:
    # A 31-byte "DEK" decrypts (the tag is right) but is not a DataKey: the error says so, and
    # the buffer the plaintext was decrypted into is zeroed before the error leaves.
    master = DataKey.generate()
    short = os.urandom(31)
    data = encrypt(master, short, BINDING, key_version=1)
    with pytest.raises(SecretValueError, match="32 bytes, not 31") as caught:
        decrypt(master, Envelope.parse(data), BINDING, DataKey)
    assert short.hex() not in str(caught.value)
    buffers = _frame_bytearrays(caught.tb, "decrypt_with_aad")
    assert [bytes(b) for b in buffers] == [bytes(31)]


def test_aad_variants_round_trip_and_bind_to_the_exact_bytes() -> None:
    key = DataKey.generate()
    data = encrypt_with_aad(key, b"payload", b"caller-aad", key_version=9)
    envelope = Envelope.parse(data)
    assert _revealed(decrypt_with_aad(key, envelope, b"caller-aad")) == b"payload"
    for other in (b"", b"caller-aa", b"caller-aad\0", b"Caller-aad"):
        with pytest.raises(IntegrityError):
            decrypt_with_aad(key, envelope, other)


# -- misuse ----------------------------------------------------------------------------------


def test_a_str_plaintext_is_refused() -> None:
    with pytest.raises(TypeError, match="not str"):
        encrypt(DataKey.generate(), "text", BINDING, key_version=1)  # type: ignore[arg-type]


def test_a_secret_itself_is_refused_as_plaintext() -> None:
    with pytest.raises(TypeError, match="revealed view"):
        encrypt(DataKey.generate(), Secret("value"), BINDING, key_version=1)  # type: ignore[arg-type]


def test_a_plaintext_above_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than"):
        encrypt(DataKey.generate(), bytes(MAX_PLAINTEXT + 1), BINDING, key_version=1)


BAD_KEY_VERSIONS: list[object] = [0, -1, 2**32, 2**64, 1.0, "1", None]


@pytest.mark.parametrize("key_version", [*BAD_KEY_VERSIONS, True])
def test_a_bad_key_version_is_refused_by_the_low_level_encrypt(key_version: object) -> None:
    with pytest.raises(ValueError, match="key_version"):
        encrypt_with_aad(DataKey.generate(), b"x", b"aad", key_version=key_version)  # type: ignore[arg-type]


@pytest.mark.parametrize("key_version", [*BAD_KEY_VERSIONS, True])
def test_a_bad_key_version_is_refused_by_encrypt(key_version: object) -> None:
    with pytest.raises(ValueError, match="key_version"):
        encrypt(DataKey.generate(), b"x", BINDING, key_version=key_version)  # type: ignore[arg-type]


def test_the_key_version_limits_are_accepted() -> None:
    key = DataKey.generate()
    for version in (1, MAX_KEY_VERSION):
        data = encrypt(key, b"x", BINDING, key_version=version)
        assert Envelope.parse(data).key_version == version


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("value", ["", None, b"bytes", 42])
def test_a_binding_needs_three_non_empty_strings(name: str, value: object) -> None:
    parts: dict[str, object] = {"owner": "user:1", "record": "dek", "field": "master"}
    parts[name] = value
    with pytest.raises(TypeError, match=f"Binding.{name}"):
        Binding(**parts)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_data_key_is_exactly_32_bytes(size: int) -> None:
    with pytest.raises(SecretValueError, match="32 bytes"):
        DataKey(os.urandom(size))
    with pytest.raises(SecretValueError):
        DataKey.adopt(bytearray(os.urandom(size)))


def test_a_wiped_key_cannot_encrypt_or_decrypt() -> None:
    key = DataKey.generate()
    data = encrypt(key, b"x", BINDING, key_version=1)
    key.wipe()
    with pytest.raises(SecretWipedError):
        encrypt(key, b"x", BINDING, key_version=1)
    with pytest.raises(SecretWipedError):
        _open(key, data, BINDING)


def test_parse_refuses_text() -> None:
    with pytest.raises(TypeError, match="bytes"):
        Envelope.parse("01" * OVERHEAD)  # type: ignore[arg-type]


def test_a_binding_component_too_long_for_its_length_prefix_is_refused() -> None:
    with pytest.raises((TypeError, ValueError)):
        encrypt(DataKey.generate(), b"x", Binding("user:1", "r" * 65536, "f"), key_version=1)
