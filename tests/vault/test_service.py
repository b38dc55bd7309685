"""The vault service, on SQLite and PostgreSQL: credentials in and out, integrity of what is
stored, password-mode unlock sessions, throttling, password changes, KDF upgrades and events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import pytest
import sqlalchemy as sa
from tests.conftest import Capture
from tests.vault.conftest import (
    ABSOLUTE_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    Stored,
    Users,
    add_credential,
    new_password,
    parse_fields,
    random_values,
    revealed,
)

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import (
    SecretWipedError,
    UnknownCredential,
    UnlockThrottled,
    VaultError,
    VaultIntegrityError,
    VaultLocked,
    WrongPassword,
)
from tradeguard.core.events import MemorySink
from tradeguard.crypto import MINIMUM_PARAMS, KdfParams, Keyring
from tradeguard.secrets import Password, Secret
from tradeguard.store.models import Credential, CredentialField, User
from tradeguard.vault import VENUES, Vault, schema_for

fields_table = cast(sa.Table, CredentialField.__table__)
credentials_table = cast(sa.Table, Credential.__table__)
users_table = cast(sa.Table, User.__table__)

log = logging.getLogger("tradeguard.gateway")


# -- helpers -----------------------------------------------------------------------------------


def get_ciphertext(engine: sa.Engine, credential_id: str, field: str) -> bytes:
    where = sa.and_(fields_table.c.credential_id == credential_id, fields_table.c.field == field)
    with engine.connect() as conn:
        return bytes(conn.execute(sa.select(fields_table.c.ciphertext).where(where)).scalar_one())


def set_ciphertext(engine: sa.Engine, credential_id: str, field: str, value: bytes) -> None:
    where = sa.and_(fields_table.c.credential_id == credential_id, fields_table.c.field == field)
    with engine.begin() as conn:
        assert conn.execute(fields_table.update().where(where).values(ciphertext=value)).rowcount
        # (rowcount 1: the row exists; the test changes what it meant to change)


def all_field_rows(engine: sa.Engine) -> list[tuple[str, str, bytes, int]]:
    query = sa.select(
        fields_table.c.credential_id,
        fields_table.c.field,
        fields_table.c.ciphertext,
        fields_table.c.dek_version,
    ).order_by(fields_table.c.credential_id, fields_table.c.field)
    with engine.connect() as conn:
        return [(c, f, bytes(ct), v) for c, f, ct, v in conn.execute(query)]


def user_row(engine: sa.Engine, name: str) -> sa.RowMapping:
    with engine.connect() as conn:
        return (
            conn.execute(sa.select(users_table).where(users_table.c.name == name)).mappings().one()
        )


def assert_no_value_in(text: str, *stored: Stored, passwords: tuple[str, ...] = ()) -> None:
    for s in stored:
        for field, value in s.values.items():
            assert value not in text, f"{s.info.name}.{field} leaked"
    for password in passwords:
        assert password not in text, "a password leaked"


def use_values(vault: Vault, credential_id: str) -> dict[str, str]:
    with vault.use(credential_id) as used:
        return {field: revealed(used[field]) for field in used}


def pw(text: str) -> Password:
    return Password(text)


# -- credentials: add, list, show, use, remove -------------------------------------------------


def test_add_list_show_remove(vault: Vault, users: Users, engine: sa.Engine) -> None:
    users.service("svc")
    users.service("bob")
    binance = add_credential(vault, "svc", "binance", "binance-main")
    okx = add_credential(vault, "svc", "okx", "okx-main")
    bobs = add_credential(vault, "bob", "bybit", "bybit-main")

    assert [c.name for c in vault.credentials("svc")] == ["binance-main", "okx-main"]
    assert {c.name for c in vault.credentials()} == {"binance-main", "okx-main", "bybit-main"}
    shown = vault.credential("binance-main", "svc")
    assert (shown.id, shown.user_name, shown.venue) == (binance.id, "svc", "binance")
    assert dict(shown.display) == {"api_key": binance.values["api_key"][:3] + "***"}
    assert vault.credential(binance.id) == shown
    assert shown.rotated_at is None
    assert shown.last_used_at is None
    assert_no_value_in(repr(vault.credentials()), binance, okx, bobs)

    removed = vault.remove_credential(binance.id)
    assert removed.id == binance.id
    assert [c.name for c in vault.credentials("svc")] == ["okx-main"]
    assert {row[0] for row in all_field_rows(engine)} == {okx.id, bobs.id}  # fields went too
    with pytest.raises(UnknownCredential, match="no credential"):
        vault.credential(binance.id)
    with pytest.raises(UnknownCredential), vault.use(binance.id):
        pass
    assert use_values(vault, okx.id) == okx.values


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_use_yields_typed_secrets_equal_to_what_was_stored(
    vault: Vault, users: Users, venue: str
) -> None:
    users.service()
    stored = add_credential(vault, "svc", venue, f"{venue}-1")
    schema = schema_for(venue)
    with vault.use(stored.id) as used:
        assert list(used) == schema.names
        for spec in schema.fields:
            assert type(used[spec.name]) is spec.type
            assert used[spec.name] == spec.parse(stored.values[spec.name])
            assert revealed(used[spec.name]) == stored.values[spec.name]


def test_the_same_name_for_two_users_is_fine_but_ambiguous_without_the_user(
    vault: Vault, users: Users
) -> None:
    users.service("svc")
    users.service("bob")
    mine = add_credential(vault, "svc", "binance", "main")
    bobs = add_credential(vault, "bob", "binance", "main")
    with pytest.raises(UnknownCredential, match="several users have a credential named 'main'"):
        vault.credential("main")
    assert vault.credential("main", "bob").id == bobs.id
    with pytest.raises(UnknownCredential):  # by id too, another user's is not found
        vault.credential(mine.id, "bob")
    assert use_values(vault, mine.id) == mine.values
    assert use_values(vault, bobs.id) == bobs.values


def test_repr_of_a_used_credential_names_it_and_shows_no_secret(vault: Vault, users: Users) -> None:
    users.service()
    stored = add_credential(vault, "svc", "binance", "binance-main")
    key = stored.values["api_key"][:3]
    with vault.use(stored.id) as used:
        expected = f"Connection(name='binance-main', venue='binance', key='{key}***')"
        assert repr(used) == expected
        assert str(used) == expected
        assert f"{used}" == expected
        assert_no_value_in(repr(used) + repr(used["api_key"]) + repr(used["api_secret"]), stored)


def test_use_registers_the_values_with_the_redactor_and_wipes_them_after(
    vault: Vault, users: Users, capture: Capture
) -> None:
    users.service()
    okx = add_credential(vault, "svc", "okx", "okx-main")
    hyper = add_credential(vault, "svc", "hyperliquid", "hl-main")
    kept = []
    for stored in (okx, hyper):
        with vault.use(stored.id) as used:
            for field in used:
                kept.append(used[field])
                with used[field].reveal_text() as text:
                    log.info("payload %s", text)
    inside = capture.text
    assert inside.count("payload [REDACTED:") == 5
    assert_no_value_in(inside, okx, hyper)
    for secret in kept:
        assert secret.wiped
        with pytest.raises(SecretWipedError), secret.reveal():
            pass
    # The control: once wiped, a value is no longer searched for, so the redaction above was
    # the registration's doing (this random token matches no pattern).
    log.info("after %s", okx.values["api_secret"])
    assert f"after {okx.values['api_secret']}" in capture.text


def test_use_wipes_the_values_when_the_block_raises(vault: Vault, users: Users) -> None:
    users.service()
    stored = add_credential(vault, "svc", "bybit", "bybit-main")
    kept: list[Secret] = []

    def request() -> None:
        with vault.use(stored.id) as used:
            kept.extend(used[field] for field in used)
            raise RuntimeError("venue said no")

    with pytest.raises(RuntimeError, match="venue said no"):
        request()
    assert len(kept) == 2
    assert all(secret.wiped for secret in kept)
    assert use_values(vault, stored.id) == stored.values  # the stored copy is untouched


def test_rotate_credential_replaces_the_values_under_the_same_id(
    vault: Vault, users: Users, clock: ManualClock, events: MemorySink
) -> None:
    users.service()
    old = add_credential(vault, "svc", "okx", "okx-main")
    clock.advance(3600)
    new_values = random_values("okx")
    info = vault.rotate_credential(old.id, parse_fields("okx", new_values))
    assert info.id == old.id
    assert info.rotated_at == clock.now()
    assert dict(info.display) == {"api_key": new_values["api_key"][:3] + "***"}
    assert use_values(vault, old.id) == new_values
    assert events.names()[-1] == "vault.credential.rotated"
    with pytest.raises(VaultError, match="a okx credential has the fields"):
        vault.rotate_credential(old.id, parse_fields("binance", random_values("binance")))
    assert use_values(vault, old.id) == new_values


# -- refusals ----------------------------------------------------------------------------------


def test_unknown_venue_wrong_fields_and_duplicates_are_refused(vault: Vault, users: Users) -> None:
    users.service()
    with pytest.raises(VaultError, match=r"unknown venue 'binanse'; choose one of: binance, "):
        vault.add_credential(
            "svc", "binanse", "x", parse_fields("binance", random_values("binance"))
        )

    okx = random_values("okx")
    del okx["passphrase"]
    with pytest.raises(
        VaultError,
        match=r"^a okx credential has the fields api_key, api_secret, passphrase; "
        r"missing passphrase$",
    ):
        vault.add_credential("svc", "okx", "okx-main", parse_fields("okx", okx))

    fields = {**parse_fields("binance", random_values("binance")), "passphrase": Secret("x" * 12)}
    with pytest.raises(VaultError, match=r"; unexpected passphrase$"):
        vault.add_credential("svc", "binance", "b", fields)

    stored = add_credential(vault, "svc", "binance", "binance-main")
    with pytest.raises(
        VaultError, match=r"^user svc already has a credential named 'binance-main'$"
    ):
        vault.add_credential(
            "svc", "binance", "binance-main", parse_fields("binance", random_values("binance"))
        )
    with pytest.raises(VaultError, match="a credential name is 1 to 64 characters"):
        vault.add_credential("svc", "binance", "Not A Name", parse_fields("binance", stored.values))
    assert [c.name for c in vault.credentials()] == ["binance-main"]  # nothing else was stored
    assert use_values(vault, stored.id) == stored.values


def test_users_are_checked(vault: Vault, users: Users) -> None:
    users.service("svc")
    with pytest.raises(VaultError, match=r"^a user named 'svc' already exists$"):
        users.service("svc")
    with pytest.raises(VaultError, match="needs a vault password; a service user none"):
        vault.add_user("carol", "password")
    with pytest.raises(VaultError, match="needs a vault password; a service user none"):
        vault.add_user("carol", "service", pw(new_password()))
    with pytest.raises(VaultError, match="a user name is 1 to 64"):
        vault.add_user("Carol", "service")
    with pytest.raises(WrongPassword, match="or a service-mode user"):
        vault.unlock("svc", pw(new_password()))


# -- integrity of what is stored ---------------------------------------------------------------


def _integrity_error(vault: Vault, credential_id: str) -> VaultIntegrityError:
    with pytest.raises(VaultIntegrityError) as caught, vault.use(credential_id):
        pytest.fail("use() must not yield a credential that failed its integrity check")
    return caught.value


@pytest.mark.parametrize("where", ["another credential", "another user's credential"])
def test_a_ciphertext_moved_to_another_credential_does_not_decrypt(
    vault: Vault, users: Users, engine: sa.Engine, where: str
) -> None:
    users.service("svc")
    users.service("bob")
    source = add_credential(vault, "svc", "binance", "source")
    owner = "svc" if where == "another credential" else "bob"
    target = add_credential(vault, owner, "binance", "target")

    set_ciphertext(engine, target.id, "api_secret", get_ciphertext(engine, source.id, "api_secret"))

    error = _integrity_error(vault, target.id)
    assert error.message == (
        f"credential target ({target.id}) field api_secret failed its integrity check; restore it "
        f"from a backup or enter it again with `tradeguard vault rotate-credential {target.id}`"
    )
    assert_no_value_in(str(error), source, target)
    assert use_values(vault, source.id) == source.values  # the original stays readable


def test_two_fields_of_one_credential_swapped_do_not_decrypt(
    vault: Vault, users: Users, engine: sa.Engine
) -> None:
    users.service()
    stored = add_credential(vault, "svc", "binance", "binance-main")
    key = get_ciphertext(engine, stored.id, "api_key")
    secret = get_ciphertext(engine, stored.id, "api_secret")
    set_ciphertext(engine, stored.id, "api_key", secret)
    set_ciphertext(engine, stored.id, "api_secret", key)

    error = _integrity_error(vault, stored.id)
    assert f"credential binance-main ({stored.id}) field api_key failed" in error.message
    assert_no_value_in(str(error), stored)

    set_ciphertext(engine, stored.id, "api_key", key)  # swap back: readable again
    error = _integrity_error(vault, stored.id)
    assert "field api_secret failed" in error.message
    set_ciphertext(engine, stored.id, "api_secret", secret)
    assert use_values(vault, stored.id) == stored.values


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: bytes([b[0] ^ 1]) + b[1:], id="format-version"),
        pytest.param(lambda b: b[:4] + bytes([b[4] ^ 1]) + b[5:], id="key-version"),
        pytest.param(lambda b: b[:8] + bytes([b[8] ^ 0x80]) + b[9:], id="nonce"),
        pytest.param(lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], id="ciphertext"),
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="tag"),
        pytest.param(lambda b: b[:-1], id="truncated"),
        pytest.param(lambda b: b"", id="emptied"),
    ],
)
def test_a_tampered_ciphertext_does_not_decrypt(
    vault: Vault, users: Users, engine: sa.Engine, tamper: Callable[[bytes], bytes]
) -> None:
    users.service()
    stored = add_credential(vault, "svc", "okx", "okx-main")
    original = get_ciphertext(engine, stored.id, "passphrase")
    changed = tamper(original)
    assert changed != original
    set_ciphertext(engine, stored.id, "passphrase", changed)
    error = _integrity_error(vault, stored.id)
    assert f"credential okx-main ({stored.id}) field passphrase failed" in error.message
    assert_no_value_in(str(error), stored)


def test_a_missing_field_row_is_an_integrity_error(
    vault: Vault, users: Users, engine: sa.Engine
) -> None:
    users.service()
    stored = add_credential(vault, "svc", "okx", "okx-main")
    with engine.begin() as conn:
        conn.execute(fields_table.delete().where(fields_table.c.field == "api_secret"))
    assert "field api_secret failed" in _integrity_error(vault, stored.id).message


def test_swapped_wrapped_data_keys_of_two_service_users_do_not_unwrap(
    vault: Vault, users: Users, engine: sa.Engine
) -> None:
    users.service("svc")
    users.service("bob")
    mine = add_credential(vault, "svc", "binance", "mine")
    bobs = add_credential(vault, "bob", "binance", "bobs")
    a, b = user_row(engine, "svc")["wrapped_dek"], user_row(engine, "bob")["wrapped_dek"]
    with engine.begin() as conn:
        conn.execute(users_table.update().where(users_table.c.name == "svc").values(wrapped_dek=b))
        conn.execute(users_table.update().where(users_table.c.name == "bob").values(wrapped_dek=a))

    for stored, owner in ((mine, "svc"), (bobs, "bob")):
        error = _integrity_error(vault, stored.id)
        assert error.message.startswith(
            f"the data key of user {owner} failed its integrity check; restore the users table"
        )
        assert_no_value_in(str(error), mine, bobs)


def test_a_credential_reassigned_to_another_user_does_not_decrypt(
    vault: Vault, users: Users, engine: sa.Engine
) -> None:
    users.service("svc")
    bob = users.service("bob")
    stored = add_credential(vault, "svc", "bybit", "bybit-main")
    with engine.begin() as conn:
        conn.execute(
            credentials_table.update()
            .where(credentials_table.c.id == stored.id)
            .values(user_id=bob.id)
        )
    assert "field api_key failed" in _integrity_error(vault, stored.id).message


def test_verify_reports_each_credential(
    vault: Vault, users: Users, engine: sa.Engine, events: MemorySink
) -> None:
    users.service("svc")
    users.password("alice")
    good = add_credential(vault, "svc", "binance", "good")
    bad = add_credential(vault, "svc", "okx", "bad")
    users.unlock("alice")
    locked = add_credential(vault, "alice", "bybit", "locked")
    vault.lock("alice")
    ct = get_ciphertext(engine, bad.id, "api_key")
    set_ciphertext(engine, bad.id, "api_key", ct[:-1] + bytes([ct[-1] ^ 1]))

    rows = {r.credential.name: r for r in vault.verify()}
    assert {name: r.status for name, r in rows.items()} == {
        "good": "ok",
        "bad": "integrity error",
        "locked": "locked",
    }
    assert rows["bad"].detail.startswith(f"credential bad ({bad.id}) field api_key failed")
    assert rows["locked"].detail == "unlock the user's vault first"
    assert_no_value_in(repr(rows), good, bad, locked)
    last = events.events[-1]
    assert (last.name.value, dict(last.details)) == ("vault.verified", {"checked": 3, "failed": 1})

    users.unlock("alice")
    assert {r.credential.name: r.status for r in vault.verify()}["locked"] == "ok"


# -- password mode -----------------------------------------------------------------------------


def test_a_locked_vault_names_the_user_and_how_to_unlock(vault: Vault, users: Users) -> None:
    users.service("svc")
    users.password("alice")
    users.unlock("alice")
    stored = add_credential(vault, "alice", "binance", "binance-main")
    theirs = add_credential(vault, "svc", "binance", "binance-main")
    assert vault.lock("alice")
    with pytest.raises(VaultLocked) as caught, vault.use(stored.id):
        pass
    assert caught.value.message == (
        "the vault of user alice is locked (password mode): it opens with alice's vault "
        "password, which commands that need it ask for"
    )
    with pytest.raises(VaultLocked):
        add_credential(vault, "alice", "okx", "okx-main")
    assert use_values(vault, theirs.id) == theirs.values  # other users are not affected

    users.unlock("alice")
    assert use_values(vault, stored.id) == stored.values
    assert [c.name for c in vault.credentials("alice")] == ["binance-main"]


def test_the_locked_message_names_no_command_that_does_not_exist(
    vault: Vault, users: Users
) -> None:
    users.password("alice")
    with pytest.raises(VaultLocked) as caught:
        vault.sessions.key(vault.user("alice").id, "alice")
    assert "tradeguard vault unlock" not in caught.value.message
    assert "alice's vault password" in caught.value.message


def test_a_wrong_password_and_an_unknown_user_look_the_same(
    vault: Vault, users: Users, events: MemorySink
) -> None:
    alice = users.password("alice")
    with pytest.raises(WrongPassword) as wrong:
        vault.unlock("alice", pw(new_password()))
    with pytest.raises(WrongPassword) as unknown:
        vault.unlock("nobody", pw(new_password()))
    assert wrong.value.message == (
        "wrong vault password for 'alice', or no such user, or a service-mode user (who has no "
        "vault password)"
    )
    assert unknown.value.message == wrong.value.message.replace("alice", "nobody")
    assert wrong.value.exit_code == unknown.value.exit_code == 1
    assert not vault.sessions.is_open(alice.id)
    failed = [(e.name.value, e.subject) for e in events.events if e.name.value.endswith("failed")]
    # the known user by id; an unknown name is not recorded (it may be a mistyped password)
    assert failed == [("vault.unlock.failed", alice.owner), ("vault.unlock.failed", None)]

    users.unlock("alice")
    assert vault.sessions.is_open(alice.id)


@pytest.mark.parametrize("name", ["alice", "nobody"])
def test_unlocks_are_throttled_after_five_failures(
    vault: Vault, users: Users, clock: ManualClock, name: str
) -> None:
    users.password("alice")
    for _ in range(5):
        with pytest.raises(WrongPassword):
            vault.unlock(name, pw(new_password()))
    right = pw(users.passwords["alice"])
    with pytest.raises(UnlockThrottled) as throttled:
        vault.unlock(name, right)  # even the right password waits
    assert throttled.value.message == (
        f"too many failed unlocks for {name!r} (5); try again in 1 s"
    )
    clock.advance(1)
    with pytest.raises(WrongPassword):  # allowed again after the delay; the sixth failure
        vault.unlock(name, pw(new_password()))
    clock.advance(1)
    with pytest.raises(UnlockThrottled, match=r"\(6\); try again in 1 s"):
        vault.unlock(name, right)  # the delay doubled to 2 s
    clock.advance(1)
    if name == "alice":
        vault.unlock("alice", right)
        for _ in range(5):  # a success resets the count: five free failures again
            with pytest.raises(WrongPassword):
                vault.unlock("alice", pw(new_password()))
        with pytest.raises(UnlockThrottled, match=r"\(5\)"):
            vault.unlock("alice", right)
    else:
        with pytest.raises(WrongPassword):
            vault.unlock(name, right)


def test_the_idle_timeout_locks_the_vault_and_zeroes_the_key(
    vault: Vault, users: Users, clock: ManualClock
) -> None:
    alice = users.password("alice")
    users.unlock("alice")
    stored = add_credential(vault, "alice", "binance", "binance-main")
    key = vault.sessions.key(alice.id, "alice")
    for _ in range(3):  # each use restarts the idle timer
        clock.advance(IDLE_TIMEOUT_S - 1)
        assert use_values(vault, stored.id) == stored.values
    assert not key.wiped
    clock.advance(IDLE_TIMEOUT_S)
    with (
        pytest.raises(VaultLocked, match="the vault of user alice is locked"),
        vault.use(stored.id),
    ):
        pass
    assert key.wiped
    assert not vault.sessions.is_open(alice.id)


def test_the_absolute_timeout_locks_the_vault_even_while_it_is_used(
    vault: Vault, users: Users, clock: ManualClock
) -> None:
    alice = users.password("alice")
    users.unlock("alice")
    stored = add_credential(vault, "alice", "binance", "binance-main")
    key = vault.sessions.key(alice.id, "alice")
    step = IDLE_TIMEOUT_S / 2
    for _ in range(int(ABSOLUTE_TIMEOUT_S / step) - 1):
        clock.advance(step)
        assert use_values(vault, stored.id) == stored.values
    clock.advance(step)  # exactly the absolute timeout after the unlock
    with pytest.raises(VaultLocked), vault.use(stored.id):
        pass
    assert key.wiped
    users.unlock("alice")
    assert use_values(vault, stored.id) == stored.values


def test_lock_ends_the_session_and_zeroes_the_key(
    vault: Vault, users: Users, events: MemorySink
) -> None:
    alice = users.password("alice")
    users.unlock("alice")
    key = vault.sessions.key(alice.id, "alice")
    assert vault.lock("alice") is True
    assert key.wiped
    assert events.names()[-1] == "vault.locked"
    assert vault.lock("alice") is False
    assert events.names().count("vault.locked") == 1


def test_change_password_rewraps_the_key_only(
    vault: Vault, users: Users, engine: sa.Engine, events: MemorySink
) -> None:
    users.password("alice")
    users.unlock("alice")
    stored = add_credential(vault, "alice", "okx", "okx-main")
    rows_before = all_field_rows(engine)
    user_before = user_row(engine, "alice")
    old, new = users.passwords["alice"], new_password()

    with pytest.raises(WrongPassword):
        vault.change_password("alice", pw(new_password()), pw(new))
    assert user_row(engine, "alice") == user_before  # a wrong old password changes nothing

    vault.change_password("alice", pw(old), pw(new))
    assert events.names()[-1] == "vault.password.changed"
    user_after = user_row(engine, "alice")
    assert user_after["wrapped_dek"] != user_before["wrapped_dek"]
    assert user_after["kdf_salt"] != user_before["kdf_salt"]
    assert all_field_rows(engine) == rows_before  # not one credential re-encrypted

    vault.lock("alice")
    with pytest.raises(WrongPassword):
        vault.unlock("alice", pw(old))
    vault.unlock("alice", pw(new))
    assert use_values(vault, stored.id) == stored.values
    users.service("svc")
    with pytest.raises(WrongPassword, match="or a service-mode user"):
        vault.change_password("svc", pw(old), pw(new))


def test_change_password_is_throttled_like_unlock(vault: Vault, users: Users) -> None:
    users.password("alice")
    new = new_password()
    for _ in range(5):
        with pytest.raises(WrongPassword):
            vault.change_password("alice", pw(new_password()), pw(new))
    with pytest.raises(UnlockThrottled):
        vault.change_password("alice", pw(new_password()), pw(new))


def test_weaker_kdf_parameters_are_upgraded_at_the_next_unlock(
    vault: Vault, users: Users, engine: sa.Engine, keyring: Keyring, clock: ManualClock
) -> None:
    users.password("alice")
    users.unlock("alice")
    stored = add_credential(vault, "alice", "binance", "binance-main")
    before = user_row(engine, "alice")
    assert (before["kdf_memory_kib"], before["kdf_iterations"], before["kdf_lanes"]) == (
        MINIMUM_PARAMS.memory_kib,
        MINIMUM_PARAMS.iterations,
        MINIMUM_PARAMS.lanes,
    )
    stronger = KdfParams(MINIMUM_PARAMS.memory_kib + 1024, MINIMUM_PARAMS.iterations + 1, 1)
    sink = MemorySink()
    upgraded = Vault(engine, keyring, clock=clock, events=sink, kdf_params=stronger)

    upgraded.unlock("alice", pw(users.passwords["alice"]))

    after = user_row(engine, "alice")
    assert (after["kdf_memory_kib"], after["kdf_iterations"], after["kdf_lanes"]) == (
        stronger.memory_kib,
        stronger.iterations,
        stronger.lanes,
    )
    assert after["kdf_salt"] != before["kdf_salt"]
    assert after["wrapped_dek"] != before["wrapped_dek"]
    event = next(e for e in sink.events if e.name.value == "vault.kdf.upgraded")
    assert event.subject == f"user:{before['id']}"
    assert dict(event.details) == {
        "before": MINIMUM_PARAMS.describe(),
        "after": stronger.describe(),
    }
    assert sink.names() == ["vault.kdf.upgraded", "vault.unlocked"]
    assert use_values(upgraded, stored.id) == stored.values

    upgraded.lock("alice")
    upgraded.unlock("alice", pw(users.passwords["alice"]))
    assert sink.names().count("vault.kdf.upgraded") == 1  # once only
    vault.lock("alice")
    users.unlock("alice")  # a vault with weaker defaults neither fails nor downgrades
    assert user_row(engine, "alice")["kdf_iterations"] == stronger.iterations


# -- events ------------------------------------------------------------------------------------


def test_events_say_what_happened_and_never_carry_a_secret(
    vault: Vault, users: Users, events: MemorySink, clock: ManualClock, engine: sa.Engine
) -> None:
    svc = users.service("svc")
    alice = users.password("alice")
    users.unlock("alice")
    binance = add_credential(vault, "svc", "binance", "binance-main")
    okx = add_credential(vault, "alice", "okx", "okx-main")
    for _ in range(3):
        use_values(vault, binance.id)
    use_values(vault, okx.id)
    rotated = random_values("binance")
    vault.rotate_credential(binance.id, parse_fields("binance", rotated))
    vault.lock("alice")
    with pytest.raises(WrongPassword):
        vault.unlock("alice", pw(new_password()))
    vault.remove_credential(okx.id)
    clock.advance(5)
    vault.flush_usage()

    assert events.names() == [
        "vault.user.added",
        "vault.user.added",
        "vault.unlocked",
        "vault.credential.added",
        "vault.credential.added",
        "vault.credential.rotated",
        "vault.locked",
        "vault.unlock.failed",
        "vault.credential.removed",
        "vault.credential.used",
        "vault.credential.used",
    ]
    subjects = [e.subject for e in events.events]
    assert subjects[:9] == [
        f"user:{svc.id}",
        f"user:{alice.id}",
        f"user:{alice.id}",
        binance.id,
        okx.id,
        binance.id,
        f"user:{alice.id}",
        f"user:{alice.id}",
        okx.id,
    ]
    used = {e.subject: e for e in events.events if e.name.value == "vault.credential.used"}
    assert {s: dict(e.details) for s, e in used.items()} == {
        binance.id: {"count": 3},
        okx.id: {"count": 1},
    }
    assert {e.actor for e in used.values()} == {"system"}
    assert vault.credential(binance.id).last_used_at == clock.now()
    assert all(e.at <= clock.now() for e in events.events)

    vault.flush_usage()  # nothing used since: nothing emitted
    assert len(events.events) == 11

    text = repr(events.events)
    assert_no_value_in(text, binance, okx, passwords=tuple(users.passwords.values()))
    for value in rotated.values():
        assert value not in text
