"""The audit log as the settings configure it: options, checkpoint file and webhook. One
implementation for the commands and the API server."""

from __future__ import annotations

import urllib.parse

from sqlalchemy import Engine

from tradeguard.audit import AuditKeys, AuditLog, AuditOptions
from tradeguard.audit.heads import WebhookPublisher
from tradeguard.config import Settings
from tradeguard.core.clock import Clock
from tradeguard.core.errors import ConfigError

__all__ = ["audit_options", "open_audit_log"]


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
