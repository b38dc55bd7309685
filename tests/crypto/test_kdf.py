"""Argon2id key derivation: determinism, what changes the key, and the parameter rules.

Derivations use the smallest parameters the validator allows (8 KiB per lane, one pass) so the
file runs in well under a second; the known-answer vectors are in test_vectors.py.
"""

from __future__ import annotations

import os

import pytest
from argon2.low_level import Type, hash_secret_raw

from tradeguard.core.errors import SecretWipedError
from tradeguard.crypto import (
    DEFAULT_PARAMS,
    MINIMUM_PARAMS,
    Binding,
    DataKey,
    Envelope,
    KdfParams,
    decrypt,
    derive_key,
    encrypt,
)
from tradeguard.crypto.kdf import SALT_SIZE, new_salt
from tradeguard.secrets import Password, Secret

FAST = KdfParams(memory_kib=8, iterations=1, lanes=1)
MAX_MEMORY_KIB = 4 * 1024 * 1024


def _password() -> Secret:
    return Secret(os.urandom(20).hex())


def _raw(key: DataKey) -> bytes:
    with key.reveal() as view:
        return view.tobytes()


def test_the_same_inputs_give_the_same_key() -> None:
    password, salt = _password(), new_salt()
    first = derive_key(password, salt, FAST)
    second = derive_key(password, salt, FAST)
    assert isinstance(first, DataKey)
    assert first == second
    assert not password.wiped  # derive_key reads the password, it does not consume it


def test_a_password_built_from_text_or_utf8_bytes_gives_the_same_key() -> None:
    salt = new_salt()
    text = "pässwörd " + os.urandom(4).hex()
    assert derive_key(Secret(text), salt, FAST) == derive_key(Secret(text.encode()), salt, FAST)
    assert derive_key(Password(text), salt, FAST) == derive_key(Secret(text), salt, FAST)


def test_derive_key_is_argon2id_with_the_given_parameters() -> None:
    password, salt = os.urandom(24), new_salt()
    params = KdfParams(memory_kib=64, iterations=2, lanes=2)
    expected = hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=2,
        memory_cost=64,
        parallelism=2,
        hash_len=32,
        type=Type.ID,
    )
    assert _raw(derive_key(Secret(password), salt, params)) == expected
    argon2i = hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=2,
        memory_cost=64,
        parallelism=2,
        hash_len=32,
        type=Type.I,
    )
    assert expected != argon2i


def test_another_salt_gives_another_key() -> None:
    password = _password()
    salt = new_salt()
    other = bytearray(salt)
    other[-1] ^= 1
    assert derive_key(password, salt, FAST) != derive_key(password, bytes(other), FAST)


def test_another_password_gives_another_key() -> None:
    salt = new_salt()
    assert derive_key(Secret("password-a"), salt, FAST) != derive_key(
        Secret("password-b"), salt, FAST
    )
    assert derive_key(Secret("password"), salt, FAST) != derive_key(Secret("password "), salt, FAST)


@pytest.mark.parametrize(
    "other",
    [
        KdfParams(memory_kib=16, iterations=1, lanes=1),
        KdfParams(memory_kib=8, iterations=2, lanes=1),
        KdfParams(memory_kib=16, iterations=1, lanes=2),
    ],
    ids=["memory", "iterations", "lanes"],
)
def test_other_parameters_give_another_key(other: KdfParams) -> None:
    password, salt = _password(), new_salt()
    assert derive_key(password, salt, FAST) != derive_key(password, salt, other)


def test_the_derived_key_is_a_usable_data_key() -> None:
    key = derive_key(_password(), new_salt(), FAST)
    binding = Binding("user:1", "dek", "password")
    data = encrypt(key, b"wrapped", binding, key_version=1)
    plaintext: Secret = decrypt(key, Envelope.parse(data), binding)
    with plaintext.reveal() as view:
        assert view.tobytes() == b"wrapped"


@pytest.mark.parametrize("password", ["text", b"bytes", bytearray(b"buffer")])
def test_the_password_must_be_a_secret(password: object) -> None:
    with pytest.raises(TypeError, match="Secret"):
        derive_key(password, new_salt(), FAST)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 8, 15, 17, 32])
def test_the_salt_must_be_16_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        derive_key(_password(), os.urandom(size), FAST)


def test_a_wiped_password_cannot_be_used() -> None:
    password = _password()
    password.wipe()
    with pytest.raises(SecretWipedError):
        derive_key(password, new_salt(), FAST)


def test_new_salt_is_16_fresh_random_bytes() -> None:
    salts = {new_salt() for _ in range(1000)}
    assert len(salts) == 1000
    assert {len(s) for s in salts} == {SALT_SIZE} == {16}


# -- parameters ------------------------------------------------------------------------------


def test_the_default_is_rfc_9106_second_recommendation() -> None:
    # RFC 9106 section 4: "If much less memory is available, ... Argon2id with t=3 iterations,
    # p=4 lanes, m=2^(16) (64 MiB of RAM)".
    assert KdfParams(memory_kib=2**16, iterations=3, lanes=4) == DEFAULT_PARAMS
    assert DEFAULT_PARAMS.memory_kib * 1024 == 64 * 1024 * 1024


def test_the_minimum_is_owasps_argon2id_floor() -> None:
    assert KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1) == MINIMUM_PARAMS
    assert not DEFAULT_PARAMS.weaker_than(MINIMUM_PARAMS)


@pytest.mark.parametrize(
    ("memory_kib", "iterations", "lanes"),
    [
        (8, 1, 1),
        (16, 1, 2),
        (8 * 64, 1, 64),
        (MAX_MEMORY_KIB, 64, 64),
    ],
)
def test_the_range_limits_are_accepted(memory_kib: int, iterations: int, lanes: int) -> None:
    params = KdfParams(memory_kib, iterations, lanes)
    assert (params.memory_kib, params.iterations, params.lanes) == (memory_kib, iterations, lanes)


@pytest.mark.parametrize(
    ("memory_kib", "iterations", "lanes", "name"),
    [
        (7, 1, 1, "memory_kib"),  # below 8 KiB per lane
        (31, 1, 4, "memory_kib"),
        (0, 1, 1, "memory_kib"),
        (-8, 1, 1, "memory_kib"),
        (MAX_MEMORY_KIB + 1, 1, 1, "memory_kib"),
        (8, 0, 1, "iterations"),
        (8, -1, 1, "iterations"),
        (8, 65, 1, "iterations"),
        (8, 1, 0, "lanes"),
        (8 * 65, 1, 65, "lanes"),
        (True, 1, 1, "memory_kib"),
        (8, True, 1, "iterations"),
        (8, 1, True, "lanes"),
        (8.0, 1, 1, "memory_kib"),
        (8, 1.0, 1, "iterations"),
        (8, 1, 1.0, "lanes"),
        (None, 1, 1, "memory_kib"),
        (8, 1, "1", "lanes"),
        (8, 1, None, "lanes"),
    ],
)
def test_out_of_range_or_non_int_parameters_are_refused(
    memory_kib: object, iterations: object, lanes: object, name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        KdfParams(memory_kib, iterations, lanes)  # type: ignore[arg-type]


def test_params_are_immutable() -> None:
    with pytest.raises(AttributeError):
        FAST.memory_kib = 1024  # type: ignore[misc]


@pytest.mark.parametrize(
    ("params", "other", "weaker"),
    [
        (KdfParams(64, 2, 2), KdfParams(64, 2, 2), False),  # equal
        (KdfParams(128, 3, 4), KdfParams(64, 2, 2), False),  # stronger everywhere
        (KdfParams(32, 2, 2), KdfParams(64, 2, 2), True),  # less memory
        (KdfParams(64, 1, 2), KdfParams(64, 2, 2), True),  # fewer passes
        (KdfParams(64, 2, 1), KdfParams(64, 2, 2), True),  # fewer lanes
        (KdfParams(1024, 1, 8), KdfParams(64, 2, 2), True),  # any one below is enough
        (MINIMUM_PARAMS, DEFAULT_PARAMS, True),
        (DEFAULT_PARAMS, MINIMUM_PARAMS, False),
    ],
)
def test_weaker_than(params: KdfParams, other: KdfParams, weaker: bool) -> None:
    assert params.weaker_than(other) is weaker


def test_describe_names_every_cost() -> None:
    assert DEFAULT_PARAMS.describe() == "m=65536 KiB, t=3, p=4"
