"""Open the vault for a command: store, master keyring and settings in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tradeguard.audit import load_audit_keys
from tradeguard.cli.settings import cli_settings
from tradeguard.core.clock import SystemClock
from tradeguard.ops.audit_log import open_audit_log
from tradeguard.ops.store import open_store
from tradeguard.vault import UnlockSessions, Vault
from tradeguard.vault.master import load_master_keyring

__all__ = ["opened_vault"]


@contextmanager
def opened_vault(**overrides: Any) -> Iterator[Vault]:
    """The vault for one command, its events going to the audit log; afterwards the keyring is
    wiped, the audit log closed (a tree head signed) and the engine closed.

    The master and audit keys are loaded before the store is touched, so a missing key changes
    nothing.
    """
    settings = cli_settings(**overrides)
    keyring = load_master_keyring(settings)
    try:
        audit_keys = load_audit_keys(settings)
        store = open_store(settings)
        clock = SystemClock()
        sessions = UnlockSessions(
            clock, settings.vault_idle_timeout, settings.vault_absolute_timeout
        )
        audit = open_audit_log(settings, store.engine, audit_keys, clock)
        vault = Vault(
            store.engine,
            keyring,
            clock=clock,
            sessions=sessions,
            events=audit,
            kdf_params=settings.kdf_params(),
        )
        try:
            yield vault
        finally:
            try:
                vault.flush_usage()
                sessions.close_all()
            finally:
                audit.close()
                store.engine.dispose()
    finally:
        keyring.wipe()
