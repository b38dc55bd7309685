"""Open the store for a command that writes: data dir, engine, connection, migrations."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tradeguard.config import Settings, ensure_data_dir
from tradeguard.store import (
    DatabaseTarget,
    SchemaStatus,
    connect_check,
    create_engine,
    schema_status,
    upgrade,
)

__all__ = ["OpenStore", "open_store"]


@dataclass(frozen=True)
class OpenStore:
    engine: sa.Engine
    target: DatabaseTarget
    before: SchemaStatus
    after: SchemaStatus


def open_store(settings: Settings) -> OpenStore:
    """Everything `db upgrade`, `demo` and `serve` do before their own work.

    Order matters for "bad input changes nothing": every check that can fail without writing
    (settings, URL, permissions, connection, schema newer than us) runs before the first write.
    """
    target = settings.database()
    if target.backend == "sqlite":
        ensure_data_dir(settings)
    engine = create_engine(target)
    connect_check(engine, target)
    before = schema_status(engine)
    after = upgrade(engine, target)
    return OpenStore(engine, target, before, after)
