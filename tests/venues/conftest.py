"""Venue tests reuse the vault tests' store and vault fixtures (SQLite and PostgreSQL)."""

from tests.vault.conftest import clock, engine, events, keyring, vault

__all__ = ["clock", "engine", "events", "keyring", "vault"]
