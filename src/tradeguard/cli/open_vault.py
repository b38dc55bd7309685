"""Open the vault for a command: store, master keyring and settings in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tradeguard.cli.settings import cli_settings
from tradeguard.cli.store import open_store
from tradeguard.core.clock import SystemClock
from tradeguard.vault import UnlockSessions, Vault
from tradeguard.vault.master import load_master_keyring

__all__ = ["opened_vault"]


@contextmanager
def opened_vault(**overrides: Any) -> Iterator[Vault]:
    """The vault for one command; the keyring is wiped and the engine closed after it.

    The master key is loaded before the store is touched, so a missing key changes nothing.
    """
    settings = cli_settings(**overrides)
    keyring = load_master_keyring(settings)
    try:
        store = open_store(settings)
        clock = SystemClock()
        sessions = UnlockSessions(
            clock, settings.vault_idle_timeout, settings.vault_absolute_timeout
        )
        vault = Vault(
            store.engine, keyring, clock=clock, sessions=sessions, kdf_params=settings.kdf_params()
        )
        try:
            yield vault
        finally:
            vault.flush_usage()
            sessions.close_all()
            store.engine.dispose()
    finally:
        keyring.wipe()
