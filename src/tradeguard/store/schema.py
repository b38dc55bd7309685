"""Where the database schema stands, and bringing it to this version's head.

A database written by a newer tradeguard (a revision this code does not know) is refused before
anything is changed: running old code on a newer schema is how data gets silently corrupted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

import tradeguard
from tradeguard.core.errors import SchemaTooNewError
from tradeguard.store.url import DatabaseTarget

__all__ = ["SchemaStatus", "head_revision", "schema_status", "upgrade"]

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any fixed 64-bit number: the key of the PostgreSQL advisory lock that serialises upgrades
# when several tradeguard instances start at once.
_UPGRADE_LOCK_KEY = 0x7467_6D69_6772_6174

State = Literal["empty", "behind", "current", "newer"]


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    state: State


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The newest schema revision this version of tradeguard knows."""
    head = _script().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {_MIGRATIONS}: the installation is broken")
    return head


def _status(connection: sa.Connection) -> SchemaStatus:
    script = _script()
    head = head_revision()
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return SchemaStatus(None, head, "empty")
    if current == head:
        return SchemaStatus(current, head, "current")
    try:
        script.get_revision(current)
    except CommandError:
        return SchemaStatus(current, head, "newer")
    return SchemaStatus(current, head, "behind")


def schema_status(engine: sa.Engine) -> SchemaStatus:
    with engine.connect() as connection:
        return _status(connection)


def _refuse_newer(status: SchemaStatus, target: DatabaseTarget) -> None:
    if status.state == "newer":
        raise SchemaTooNewError(
            f"the database ({target.describe()}) is at schema revision {status.current}, which "
            f"tradeguard {tradeguard.__version__} does not know (its newest is {status.head}): "
            "a newer tradeguard wrote it; upgrade tradeguard, or restore a backup made by this "
            "version"
        )


@contextmanager
def _upgrade_lock(connection: sa.Connection) -> Iterator[None]:
    if connection.dialect.name != "postgresql":
        yield  # SQLite: one host, and its write lock already serialises the DDL
        return
    connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _UPGRADE_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _UPGRADE_LOCK_KEY})
        connection.commit()


def upgrade(engine: sa.Engine, target: DatabaseTarget) -> SchemaStatus:
    """Migrate to this version's head; refuse (changing nothing) if the database is newer."""
    with engine.connect() as connection, _upgrade_lock(connection):
        status = _status(connection)
        connection.commit()
        _refuse_newer(status, target)
        if status.state != "current":
            command.upgrade(_config(connection), "head")
            connection.commit()
        return _status(connection)
