"""Open and close everything the API server works with, in one place.

Keys are loaded before the store is touched (a missing key changes nothing); the store is
upgraded to this version's schema; the vault, audit log and account service are built on it.
On the way out, in reverse: the account service stops its mail worker, the vault flushes its
usage counts and forgets unlocked keys, the audit log signs a final head, the engine closes,
and the master keyring and session key are wiped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from tradeguard.audit import load_audit_keys
from tradeguard.auth.factory import build_account_service
from tradeguard.config import Settings, ensure_data_dir
from tradeguard.core.clock import Clock, SystemClock
from tradeguard.ops.audit_log import open_audit_log
from tradeguard.ops.store import open_store
from tradeguard.vault import UnlockSessions, Vault
from tradeguard.vault.master import load_master_keyring
from tradeguard.web.context import AppContext

__all__ = ["open_context"]


@contextmanager
def open_context(settings: Settings, *, clock: Clock | None = None) -> Iterator[AppContext]:
    """The server's context; everything is closed (in reverse order) when the block ends."""
    clock = clock or SystemClock()
    with ExitStack() as stack:
        keyring = load_master_keyring(settings)
        stack.callback(keyring.wipe)
        audit_keys = load_audit_keys(settings)
        ensure_data_dir(settings)  # the session key lives there, whatever the database
        engine = open_store(settings).engine
        stack.callback(engine.dispose)
        audit = open_audit_log(settings, engine, audit_keys, clock)
        stack.callback(audit.close)
        sessions = UnlockSessions(
            clock, settings.vault_idle_timeout, settings.vault_absolute_timeout
        )
        stack.callback(sessions.close_all)
        vault = Vault(
            engine,
            keyring,
            clock=clock,
            sessions=sessions,
            events=audit,
            kdf_params=settings.kdf_params(),
        )
        stack.callback(vault.flush_usage)
        accounts = build_account_service(settings, engine, vault=vault, events=audit, clock=clock)
        stack.callback(accounts.session_key.wipe)
        stack.callback(accounts.close)
        yield AppContext(settings, engine, vault, audit, accounts, clock)
