"""Fixtures for the vault tests: a migrated store, a vault with a manual clock, users, and
credential values generated at test time (the repository never holds a realistic key).

`vault` runs on SQLite and on PostgreSQL (through `db_target`). Argon2id runs with the OWASP
minimum parameters so a password-mode user costs milliseconds, not a second.
"""

from __future__ import annotations

import functools
import secrets
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.conftest import Capture

from tradeguard.core.clock import ManualClock
from tradeguard.core.events import MemorySink
from tradeguard.crypto import MINIMUM_PARAMS, DataKey, Keyring
from tradeguard.secrets import Password, Secret, redact
from tradeguard.store import DatabaseTarget, create_engine, upgrade
from tradeguard.vault import CredentialInfo, UnlockSessions, UserInfo, Vault, schema_for

IDLE_TIMEOUT_S = 60.0
ABSOLUTE_TIMEOUT_S = 600.0

# -- values ------------------------------------------------------------------------------------


def token(nbytes: int = 24) -> str:
    """Printable ASCII without spaces (an API key or secret shape)."""
    return secrets.token_urlsafe(nbytes)


def hex_key() -> str:
    return secrets.token_hex(32)


def address() -> str:
    return "0x" + secrets.token_hex(20)


@functools.cache
def rsa_pem() -> str:
    """A fresh RSA private key as PKCS#8 PEM, made once per test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def random_values(venue: str) -> dict[str, str]:
    """Plain values for every field of `venue`, each shaped as its schema wants."""
    makers = {
        "api_key": token,
        "api_secret": lambda: token(32),
        "passphrase": lambda: token(12),
        "api_passphrase": lambda: token(12),
        "agent_private_key": hex_key,
        "signer_private_key": hex_key,
        "account_address": address,
        "funder_address": address,
        "key_id": lambda: str(uuid.uuid4()),
        "private_key": rsa_pem,
    }
    return {spec.name: makers[spec.name]() for spec in schema_for(venue).fields}


def parse_fields(venue: str, values: Mapping[str, str]) -> dict[str, Secret]:
    """The values parsed into their schema types, as the CLI hands them to the vault."""
    specs = {spec.name: spec for spec in schema_for(venue).fields}
    return {name: specs[name].parse(value) for name, value in values.items()}


def revealed(secret: Secret) -> str:
    with secret.reveal() as view:
        return view.tobytes().decode("utf-8")


def new_password() -> str:
    return "pw-" + secrets.token_urlsafe(18)


# -- the store and the vault -------------------------------------------------------------------


@pytest.fixture
def engine(db_target: DatabaseTarget) -> Iterator[sa.Engine]:
    engine = create_engine(db_target)
    upgrade(engine, db_target)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def events() -> MemorySink:
    return MemorySink()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({1: DataKey.generate()}, 1, "test")


@pytest.fixture
def vault(engine: sa.Engine, keyring: Keyring, clock: ManualClock, events: MemorySink) -> Vault:
    sessions = UnlockSessions(clock, IDLE_TIMEOUT_S, ABSOLUTE_TIMEOUT_S)
    return Vault(
        engine, keyring, clock=clock, sessions=sessions, events=events, kdf_params=MINIMUM_PARAMS
    )


@dataclass
class Users:
    """Adds users to one vault; remembers each password-mode user's password."""

    vault: Vault
    passwords: dict[str, str]

    def service(self, name: str = "svc") -> UserInfo:
        return self.vault.add_user(name, "service")

    def password(self, name: str = "alice", password: str | None = None) -> UserInfo:
        self.passwords[name] = password or new_password()
        with Password(self.passwords[name]) as secret:
            return self.vault.add_user(name, "password", secret)

    def unlock(self, name: str = "alice") -> None:
        with Password(self.passwords[name]) as secret:
            self.vault.unlock(name, secret)


@pytest.fixture
def users(vault: Vault) -> Users:
    return Users(vault, {})


@dataclass
class Stored:
    info: CredentialInfo
    values: dict[str, str]

    @property
    def id(self) -> str:
        return self.info.id


def add_credential(vault: Vault, user: str, venue: str, name: str) -> Stored:
    """Store a credential with fresh random values; the plain values are returned to compare."""
    values = random_values(venue)
    fields = parse_fields(venue, values)
    try:
        info = vault.add_credential(user, venue, name, fields)
    finally:
        for secret in fields.values():
            secret.wipe()
    return Stored(info, values)


# -- logging -----------------------------------------------------------------------------------


@pytest.fixture
def capture(capture: Capture) -> Iterator[Capture]:
    """The shared capture, with the redaction hook installed, as a CLI run has."""
    was_installed = redact.installed()
    redact.install()
    try:
        yield capture
    finally:
        if not was_installed:
            redact.uninstall()
