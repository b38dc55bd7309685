"""Fixtures for the audit tests: a migrated store (SQLite and PostgreSQL), audit keys generated at
test time, and a factory for audit logs that are closed when the test ends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tradeguard.audit import AuditKeys, AuditLog, AuditOptions
from tradeguard.audit.heads import WebhookPublisher
from tradeguard.core.clock import ManualClock
from tradeguard.crypto import DataKey, Keyring
from tradeguard.store import DatabaseTarget, create_engine, upgrade


def new_keys(*versions: int) -> AuditKeys:
    """Audit keys with fresh random seeds; the last version is primary."""
    versions = versions or (1,)
    keyring = Keyring({v: DataKey.generate() for v in versions}, versions[-1], "test audit key")
    try:
        return AuditKeys(keyring)
    finally:
        keyring.wipe()


@dataclass
class AuditStore:
    engine: sa.Engine
    target: DatabaseTarget
    keys: AuditKeys
    clock: ManualClock
    checkpoints: Path
    opened: list[AuditLog]

    def log(self, webhook: WebhookPublisher | None = None, **options: Any) -> AuditLog:
        """An audit log on this store; closed (final head signed) at the end of the test."""
        options.setdefault("checkpoint_file", self.checkpoints)
        options.setdefault("window", 0.0)
        log = AuditLog(
            self.engine,
            self.keys,
            clock=self.clock,
            options=AuditOptions(**options),
            webhook=webhook,
        )
        self.opened.append(log)
        return log


@pytest.fixture
def audit_store(db_target: DatabaseTarget, tmp_path: Path) -> Iterator[AuditStore]:
    engine = create_engine(db_target)
    upgrade(engine, db_target)
    store = AuditStore(
        engine, db_target, new_keys(), ManualClock(), tmp_path / "checkpoints.jsonl", []
    )
    try:
        yield store
    finally:
        for log in store.opened:
            log.close()
        engine.dispose()
