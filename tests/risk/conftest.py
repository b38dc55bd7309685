"""A migrated SQLite store for the risk tests that run the engine against the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tradeguard.store import create_engine, resolve_database, upgrade


def migrated(directory: Path) -> sa.Engine:
    """A migrated SQLite store in a new private `directory`."""
    directory.mkdir(mode=0o700)
    target = resolve_database(None, directory, production=False)
    engine = create_engine(target)
    upgrade(engine, target)
    return engine


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[sa.Engine]:
    db = migrated(tmp_path / "data")
    try:
        yield db
    finally:
        db.dispose()
