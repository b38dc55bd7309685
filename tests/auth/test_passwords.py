"""Login passwords: the OWASP floor for Argon2id, PHC hashes, one error for every failed verify,
the length rules on NFKC text, and the strength checks (context words, common list, zxcvbn)."""

from __future__ import annotations

import secrets
import string
import traceback
from types import SimpleNamespace
from typing import Any

import argon2
import pytest
from argon2.low_level import Type, hash_secret

from tradeguard.auth import passwords
from tradeguard.auth.passwords import (
    DEFAULT_HASH_PARAMS,
    MAX_LENGTH,
    MIN_LENGTH,
    HashParams,
    PasswordHasher,
    check_strength,
)
from tradeguard.core.errors import LoginFailed, WeakPassword
from tradeguard.secrets import Password

STRONG = "glacier-ottoman-5-quiver"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


def _random_text(length: int) -> str:
    alphabet = string.ascii_letters + string.digits + "!#%&*+-=?@^_~"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _weak_reason(password: str, **kwargs: Any) -> str:
    with pytest.raises(WeakPassword) as caught:
        check_strength(Password(password), **kwargs)
    return caught.value.message


# -- parameters ------------------------------------------------------------------------------


def test_default_params_are_owasps_minimum() -> None:
    assert HashParams(memory_kib=19456, iterations=2, lanes=1) == DEFAULT_HASH_PARAMS


@pytest.mark.parametrize(
    ("memory_kib", "iterations", "lanes"),
    [(19456, 2, 1), (38912, 1, 1), (46 * 1024, 1, 1), (64 * 1024, 3, 4)],
)
def test_params_at_or_above_the_floor_are_allowed(
    memory_kib: int, iterations: int, lanes: int
) -> None:
    HashParams(memory_kib, iterations, lanes)


@pytest.mark.parametrize(
    ("memory_kib", "iterations", "lanes", "says"),
    [
        (19456, 1, 1, r"memory_kib \* iterations must be at least 38912"),
        (38911, 1, 1, r"memory_kib \* iterations"),
        (19455, 3, 1, "memory_kib must be at least 19456"),
        (19456, 2, 0, "lanes must be an int from 1"),
        (19456, 0, 1, "iterations must be an int from 1"),
        (8 * 1024 * 1024, 2, 1, "memory_kib must be an int from"),
    ],
)
def test_params_below_the_floor_are_refused(
    memory_kib: int, iterations: int, lanes: int, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        HashParams(memory_kib, iterations, lanes)


def test_params_must_be_ints() -> None:
    with pytest.raises(ValueError, match="must be an int"):
        HashParams(19456.0, 2, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be an int"):
        HashParams(19456, True, 1)


# -- hashing and verifying -------------------------------------------------------------------


def test_hash_and_verify_round_trip(hasher: PasswordHasher) -> None:
    phc = hasher.hash(Password(STRONG))
    hasher.verify(phc, Password(STRONG))


def test_the_phc_string_carries_the_configured_parameters() -> None:
    phc = PasswordHasher(HashParams(47104, 1, 1)).hash(Password(STRONG))
    assert phc.startswith("$argon2id$v=19$m=47104,t=1,p=1$")
    params = argon2.extract_parameters(phc)
    assert (params.salt_len, params.hash_len) == (16, 32)


def test_default_hasher_writes_the_default_parameters(hasher: PasswordHasher) -> None:
    assert hasher.hash(Password(STRONG)).startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_each_hash_has_its_own_salt(hasher: PasswordHasher) -> None:
    assert hasher.hash(Password(STRONG)) != hasher.hash(Password(STRONG))


def test_a_wrong_password_fails_with_the_one_login_message(hasher: PasswordHasher) -> None:
    phc = hasher.hash(Password(STRONG))
    with pytest.raises(LoginFailed) as caught:
        hasher.verify(phc, Password(STRONG + "x"))
    assert type(caught.value) is LoginFailed
    assert caught.value.message == "wrong name or password"
    # argon2's own exception is not chained into ours
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_a_hash_made_with_other_params_still_verifies(hasher: PasswordHasher) -> None:
    phc = PasswordHasher(HashParams(47104, 1, 1)).hash(Password(STRONG))
    hasher.verify(phc, Password(STRONG))


def test_needs_rehash_when_the_parameters_change(hasher: PasswordHasher) -> None:
    phc = hasher.hash(Password(STRONG))
    assert not hasher.needs_rehash(phc)
    assert PasswordHasher(HashParams(47104, 1, 1)).needs_rehash(phc)
    assert PasswordHasher(HashParams(19456, 3, 1)).needs_rehash(phc)
    assert PasswordHasher(HashParams(19456, 2, 2)).needs_rehash(phc)


def _argon2_hash(password: str, kind: Type, memory_kib: int = 19456) -> str:
    return hash_secret(
        password.encode(),
        secrets.token_bytes(16),
        time_cost=2,
        memory_cost=memory_kib,
        parallelism=1,
        hash_len=32,
        type=kind,
    ).decode()


def _malformed(hasher: PasswordHasher) -> list[object]:
    good = hasher.hash(Password(STRONG))
    return [
        "",
        "not a hash",
        good[:-10],
        good.replace("$v=19$", "$v=16$"),
        good.replace("m=19456", "m=4294967295"),  # would ask for 4 TiB
        good.replace("m=19456", "m=abc"),
        good + "é",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        "$argon2id$" + "x" * 5000,
        _argon2_hash(STRONG, Type.I),  # the right password, under argon2i
        _argon2_hash(STRONG, Type.D),
        None,
        b"$argon2id$",
    ]


def test_every_unusable_hash_is_a_login_failure(hasher: PasswordHasher) -> None:
    for phc in _malformed(hasher):
        with pytest.raises(LoginFailed) as caught:
            hasher.verify(phc, Password(STRONG))  # type: ignore[arg-type]
        assert type(caught.value) is LoginFailed, phc
        assert caught.value.message == "wrong name or password"


def test_an_unusable_hash_needs_rehash(hasher: PasswordHasher) -> None:
    for phc in _malformed(hasher):
        assert hasher.needs_rehash(phc)  # type: ignore[arg-type]


def test_a_low_memory_argon2id_hash_verifies_but_needs_rehash(hasher: PasswordHasher) -> None:
    phc = _argon2_hash(STRONG, Type.ID, memory_kib=8192)
    hasher.verify(phc, Password(STRONG))
    assert hasher.needs_rehash(phc)


def test_nothing_is_truncated(hasher: PasswordHasher) -> None:
    base = _random_text(MAX_LENGTH - 1)
    first, second = base + "a", base + "b"
    phc = hasher.hash(Password(first))
    hasher.verify(phc, Password(first))
    with pytest.raises(LoginFailed):
        hasher.verify(phc, Password(second))


def test_a_prefix_does_not_verify(hasher: PasswordHasher) -> None:
    phc = hasher.hash(Password(STRONG))
    with pytest.raises(LoginFailed):
        hasher.verify(phc, Password(STRONG[:-1]))


def test_hash_refuses_passwords_outside_the_length_bounds(hasher: PasswordHasher) -> None:
    for bad in ("a" * (MIN_LENGTH - 1), "a" * (MAX_LENGTH + 1), "a" * 100_000):
        with pytest.raises(WeakPassword, match="12 to 1024 characters"):
            hasher.hash(Password(bad))


def test_verify_refuses_an_over_long_password_without_hashing(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    phc = hasher.hash(Password(STRONG))
    monkeypatch.setattr(argon2.PasswordHasher, "verify", _must_not_run)
    with pytest.raises(LoginFailed):
        hasher.verify(phc, Password("a" * (MAX_LENGTH + 1)))
    with pytest.raises(LoginFailed):
        hasher.verify(phc, Password("a" * 1_000_000))


def test_verify_has_no_minimum_so_a_stricter_policy_locks_nobody_out(
    hasher: PasswordHasher,
) -> None:
    phc = _argon2_hash("short-pw", Type.ID)
    hasher.verify(phc, Password("short-pw"))


def test_hash_and_verify_normalize_to_nfkc(hasher: PasswordHasher) -> None:
    fullwidth = "ｇｌａｃｉｅｒ-ottoman-5-quiver"  # noqa: RUF001 - the point of the test
    phc = hasher.hash(Password(fullwidth))
    hasher.verify(phc, Password(STRONG))
    composed, decomposed = "caf\u00e9-ottoman-quiver", "cafe\u0301-ottoman-quiver"
    hasher.verify(hasher.hash(Password(composed)), Password(decomposed))


def test_length_counts_code_points_of_the_nfkc_text(hasher: PasswordHasher) -> None:
    # 12 accented letters, written decomposed (24 code points): 12 characters, long enough
    hasher.hash(Password("e\u0301" * 12))
    with pytest.raises(WeakPassword, match="shorter"):
        hasher.hash(Password("e\u0301" * 11))
    # a ligature is two letters after NFKC: 6 of them are 12 characters
    hasher.hash(Password("\ufb01" * 6))
    with pytest.raises(WeakPassword, match="longer"):
        hasher.hash(Password("a" * (MAX_LENGTH - 1) + "\ufb01"))


def test_bytes_that_are_not_utf8_are_refused_without_quoting_them(
    hasher: PasswordHasher,
) -> None:
    bad = Password(b"\xff\xfe" + b"x" * 12)
    with pytest.raises(WeakPassword, match="valid UTF-8") as caught:
        hasher.hash(bad)
    assert caught.value.__context__ is None
    assert "xff" not in str(caught.value)
    phc = hasher.hash(Password(STRONG))
    with pytest.raises(LoginFailed):
        hasher.verify(phc, bad)


def test_a_plain_string_is_refused_by_type(hasher: PasswordHasher) -> None:
    with pytest.raises(TypeError, match="Password"):
        hasher.hash(STRONG)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Password"):
        check_strength(STRONG)  # type: ignore[arg-type]


# -- burn ------------------------------------------------------------------------------------


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("this step must not run")


def test_burn_does_one_argon2_verify_with_this_hashers_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasher(HashParams(47104, 1, 1))
    seen: list[str] = []
    real_verify = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hash: str, password: bytes) -> bool:
        seen.append(hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)
    hasher.burn(Password(STRONG))
    hasher.burn(Password("anything-else-entirely"))
    assert len(seen) == 2
    assert seen[0] == seen[1]  # one dummy hash, made once
    assert seen[0].startswith("$argon2id$v=19$m=47104,t=1,p=1$")


def test_burn_never_raises(hasher: PasswordHasher) -> None:
    for attempt in ("", "x", STRONG, "a" * 5000):
        hasher.burn(Password(attempt))
    hasher.burn(Password(b"\xff" * 20))


# -- strength --------------------------------------------------------------------------------


def test_a_strong_passphrase_is_accepted() -> None:
    check_strength(Password(STRONG))
    check_strength(Password("correct otter balloon physics"))


def test_exactly_the_minimum_length_is_accepted_if_strong() -> None:
    check_strength(Password("vR7#qLz2!mWp"))
    assert len("vR7#qLz2!mWp") == MIN_LENGTH


def test_one_below_the_minimum_is_refused_with_the_bounds() -> None:
    reason = _weak_reason("vR7#qLz2!mW")
    assert reason == "a password must be 12 to 1024 characters long; this one is shorter"


def test_exactly_the_maximum_length_is_accepted_if_strong() -> None:
    check_strength(Password(_random_text(MAX_LENGTH)))


def test_one_above_the_maximum_is_refused_with_the_bounds() -> None:
    reason = _weak_reason(_random_text(MAX_LENGTH + 1))
    assert reason == "a password must be 12 to 1024 characters long; this one is longer"


def test_the_length_limit_is_checked_before_zxcvbn_or_normalization(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passwords, "zxcvbn", _must_not_run)
    monkeypatch.setattr(passwords, "unicodedata", SimpleNamespace(normalize=_must_not_run))
    assert "longer" in _weak_reason("a" * 10_000_000)


def test_zxcvbn_sees_only_the_first_100_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake(text: str, **kwargs: Any) -> dict[str, Any]:
        seen.append(text)
        return {"score": 4, "feedback": {"warning": "", "suggestions": []}}

    monkeypatch.setattr(passwords, "zxcvbn", fake)
    long_password = _random_text(MAX_LENGTH)
    check_strength(Password(long_password))
    assert seen == [long_password[:100]]


@pytest.mark.parametrize(
    "common", ["password1234", "1qaz2wsx3edc", "qwerty123456", "QWERTY123456", "Password1234"]
)
def test_common_passwords_are_refused(common: str) -> None:
    assert "most common passwords" in _weak_reason(common)


def test_the_common_list_applies_whatever_the_min_score(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "most common passwords" in _weak_reason("1Qaz2Wsx3Edc", min_score=0)


def test_a_low_score_gives_zxcvbns_advice() -> None:
    reason = _weak_reason("hunter2hunter2")
    assert reason.startswith("this password is too easy to guess (strength 1 of 4, 3 needed): ")
    assert "Repeats like" in reason
    assert "\n" not in reason


def test_min_score_is_honoured() -> None:
    check_strength(Password("hunter2hunter2"), min_score=1)
    with pytest.raises(ValueError, match="0 to 4"):
        check_strength(Password(STRONG), min_score=5)


def test_the_users_name_or_email_make_a_password_fail() -> None:
    candidate = "alice-trading-2026"
    check_strength(Password(candidate))  # strong for a stranger
    for inputs in (["alice"], ["Alice"], ["alice@example.com"], ["alice.smith@example.com"]):
        reason = _weak_reason(candidate, user_inputs=inputs)
        assert "must not contain your user name" in reason, inputs
    assert "must not contain" in _weak_reason("Smith-trading-2026", user_inputs=["Alice Smith"])


def test_the_email_domain_alone_is_not_a_context_word() -> None:
    check_strength(Password("comet-ottoman-5-quiver"), user_inputs=["bob@mail.com"])


def test_the_service_name_makes_a_password_fail() -> None:
    assert "name of this service" in _weak_reason("TradeGuard-rocks-2026!")


def test_user_inputs_must_be_a_sequence_of_strings() -> None:
    with pytest.raises(TypeError, match="sequence of strings"):
        check_strength(Password(STRONG), user_inputs="alice")


def test_the_password_is_never_in_an_error_or_a_repr(hasher: PasswordHasher) -> None:
    phc = hasher.hash(Password(STRONG))
    attempts = [
        "Zq-secret-value-that-is-too-short"[:11],
        "password1234",
        "hunter2hunter2",
        "alice-sekrit-2026",
        "Qq" + "z" * 2000,
    ]
    for attempt in attempts:
        secret = Password(attempt)
        assert attempt not in repr(secret)
        failures: list[BaseException] = []
        with pytest.raises(WeakPassword) as weak:
            check_strength(secret, user_inputs=["alice"])
        failures.append(weak.value)
        with pytest.raises(LoginFailed) as failed:
            hasher.verify(phc, secret)
        failures.append(failed.value)
        for error in failures:
            text = "".join(traceback.format_exception(error)) + repr(error)
            assert attempt not in text
            assert attempt[:10] not in text
