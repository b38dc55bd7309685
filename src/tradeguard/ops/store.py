"""Open the store: to write (data dir, engine, migrations) or only to read. One implementation
for the commands and the API server (`tradeguard serve` opens it through web.runtime)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tradeguard.config import Settings, ensure_data_dir
from tradeguard.core.errors import StorageError
from tradeguard.store import (
    DatabaseTarget,
    SchemaStatus,
    connect_check,
    create_engine,
    schema_status,
    upgrade,
)
from tradeguard.store.engine import check_sqlite_files

__all__ = ["OpenStore", "open_existing_store", "open_store"]


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


def open_existing_store(settings: Settings) -> sa.Engine:
    """For commands that only read (`audit verify`, `export`, proofs): the database must exist
    and be at this version's schema; nothing is created or migrated. A mistyped data directory
    must not read as an empty, intact log."""
    target = settings.database()
    if target.backend == "sqlite" and not check_sqlite_files(target.sqlite_file()):
        raise StorageError(
            f"there is no tradeguard database at {target.sqlite_file()}; check "
            "TRADEGUARD_DATA_DIR (or TRADEGUARD_DATABASE_URL)"
        )
    engine = create_engine(target, read_only=True)
    try:
        connect_check(engine, target)
        status = schema_status(engine)
    except BaseException:
        engine.dispose()
        raise
    if status.state != "current":
        engine.dispose()
        raise StorageError(
            f"the database ({target.describe()}) is at schema revision {status.current}, not "
            f"{status.head}; run `tradeguard db upgrade` with this version of tradeguard"
        )
    return engine
