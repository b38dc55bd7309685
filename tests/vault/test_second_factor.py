"""TOTP secrets under the master keyring: bound to their user, moved by rewrap, counted by
retire."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from tests.vault.conftest import Users

from tradeguard.core.errors import IntegrityError, VaultError
from tradeguard.crypto import DataKey, Keyring
from tradeguard.secrets import Token
from tradeguard.vault import Vault, pending_rewrap, retire_below, rewrap
from tradeguard.vault.second_factor import open_totp_secret, seal_totp_secret
from tradeguard.vault.users import users

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _store(vault: Vault, user_id: int) -> None:
    sealed, version = seal_totp_secret(Token(SECRET), user_id, vault.keyring)
    with vault.engine.begin() as conn:
        conn.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(totp_secret=sealed, totp_key_version=version)
        )


def _row(vault: Vault, user_id: int) -> sa.Row[tuple[bytes, int]]:
    with vault.engine.connect() as conn:
        return conn.execute(
            sa.select(users.c.totp_secret, users.c.totp_key_version).where(users.c.id == user_id)
        ).one()


def test_a_sealed_secret_opens_for_its_user_only(vault: Vault, users: Users) -> None:
    alice, bob = users.service("alice"), users.service("bob")
    sealed, _ = seal_totp_secret(Token(SECRET), alice.id, vault.keyring)
    with open_totp_secret(sealed, alice.id, vault.keyring).reveal_text() as text:
        assert text == SECRET
    with pytest.raises(IntegrityError):
        open_totp_secret(sealed, bob.id, vault.keyring)
    assert SECRET.encode() not in sealed


def test_rewrap_moves_totp_secrets_and_retire_waits_for_it(
    vault: Vault, users: Users, keyring: Keyring
) -> None:
    alice = users.service("alice")
    _store(vault, alice.id)
    rotated = Keyring({**{1: keyring.get(1)}, 2: DataKey.generate()}, 2, "test")
    moved = Vault(vault.engine, rotated, clock=vault.clock, events=vault.events)
    assert pending_rewrap(moved) == 2  # the DEK and the TOTP secret
    with pytest.raises(VaultError, match="second-factor secret"):
        retire_below(moved, 2)

    result = rewrap(moved)
    assert (result.rewrapped, result.second_factors, result.failed) == (1, 1, [])
    sealed, version = _row(moved, alice.id)
    assert version == 2
    with open_totp_secret(sealed, alice.id, rotated).reveal_text() as text:
        assert text == SECRET
    assert pending_rewrap(moved) == 0
    assert retire_below(moved, 2) == 2
