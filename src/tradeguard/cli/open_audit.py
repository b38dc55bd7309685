"""The audit log for a command that changes something (the opening itself is tradeguard.ops)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from tradeguard.audit import AuditLog, load_audit_keys
from tradeguard.cli.settings import cli_settings
from tradeguard.config import Settings
from tradeguard.ops.audit_log import open_audit_log
from tradeguard.ops.store import open_store

__all__ = ["opened_for_change"]


@contextmanager
def opened_for_change() -> Iterator[tuple[Settings, Engine, AuditLog]]:
    """Settings, the store (upgraded) and its audit log, for a command that changes something;
    the log is closed (a final signed head) and the store disposed afterwards."""
    settings = cli_settings()
    keys = load_audit_keys(settings)  # before the store is touched: a missing key changes nothing
    store = open_store(settings)
    audit = open_audit_log(settings, store.engine, keys)
    try:
        yield settings, store.engine, audit
    finally:
        audit.close()
        store.engine.dispose()
