"""The audit log for a command: keys, options and webhook from the settings."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from tradeguard.audit import AuditKeys, AuditLog, AuditOptions, load_audit_keys
from tradeguard.audit.heads import WebhookPublisher
from tradeguard.cli.settings import cli_settings
from tradeguard.cli.store import open_store
from tradeguard.config import Settings
from tradeguard.core.clock import Clock
from tradeguard.core.errors import ConfigError

__all__ = ["audit_options", "open_audit_log", "opened_for_change"]


def audit_options(settings: Settings) -> AuditOptions:
    return AuditOptions(
        head_every=settings.audit_head_every,
        head_interval=float(settings.audit_head_interval),
        window=settings.audit_group_commit_ms / 1000,
        checkpoint_file=settings.checkpoint_file(),
    )


def _webhook(settings: Settings, keys: AuditKeys) -> WebhookPublisher | None:
    url = settings.audit_webhook_url
    if url is None:
        return None
    with url.reveal() as view:
        scheme = urllib.parse.urlsplit(bytes(view).decode("utf-8", "replace")).scheme
    if scheme not in ("https", "http"):
        raise ConfigError("TRADEGUARD_AUDIT_WEBHOOK_URL must be an https:// (or http://) URL")
    return WebhookPublisher(url, keys)


def open_audit_log(
    settings: Settings, engine: Engine, keys: AuditKeys, clock: Clock | None = None
) -> AuditLog:
    """An audit log writing to `engine`; close it (it signs a final tree head)."""
    return AuditLog(
        engine, keys, clock=clock, options=audit_options(settings), webhook=_webhook(settings, keys)
    )


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
