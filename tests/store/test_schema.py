"""Migrations, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import tradeguard
from tradeguard.core.errors import SchemaTooNewError
from tradeguard.secrets import Secret
from tradeguard.store import (
    DatabaseTarget,
    create_engine,
    resolve_database,
    schema_status,
    upgrade,
)
from tradeguard.store.models import Base


def test_upgrade_brings_an_empty_database_to_head(db_target: DatabaseTarget) -> None:
    engine = create_engine(db_target)
    assert schema_status(engine).state == "empty"
    status = upgrade(engine, db_target)
    assert status.state == "current"
    assert status.current == status.head
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT instance_id, created_by_version FROM instance")).one()
    assert uuid.UUID(row.instance_id)
    assert row.created_by_version == tradeguard.__version__


def test_upgrade_twice_changes_nothing(db_target: DatabaseTarget) -> None:
    engine = create_engine(db_target)
    upgrade(engine, db_target)
    with engine.connect() as conn:
        first = conn.execute(sa.text("SELECT instance_id FROM instance")).scalar_one()
    assert upgrade(engine, db_target).state == "current"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT instance_id FROM instance")).scalar_one() == first


def test_the_migrations_build_exactly_the_models(db_target: DatabaseTarget) -> None:
    engine = create_engine(db_target)
    upgrade(engine, db_target)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_database_from_a_newer_tradeguard_is_refused_untouched(db_target: DatabaseTarget) -> None:
    engine = create_engine(db_target)
    upgrade(engine, db_target)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        conn.execute(sa.text("CREATE TABLE from_the_future (x INTEGER)"))
    assert schema_status(engine).state == "newer"
    with pytest.raises(SchemaTooNewError, match=r"revision 9999, which tradeguard .* does not"):
        upgrade(engine, db_target)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "9999"
        assert conn.execute(sa.text("SELECT count(*) FROM from_the_future")).scalar() == 0


def test_the_instance_table_holds_one_row_only(db_target: DatabaseTarget) -> None:
    engine = create_engine(db_target)
    upgrade(engine, db_target)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO instance (id, instance_id, created_at, created_by_version) "
                "VALUES (2, 'x', CURRENT_TIMESTAMP, 'x')"
            )
        )


@pytest.mark.postgres
def test_instances_starting_together_upgrade_once(postgres_schema_url: str) -> None:
    """Several servers on one PostgreSQL: the advisory lock serialises their migrations."""
    target = resolve_database(Secret(postgres_schema_url), Path("/"), production=False)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            upgrade(create_engine(target), target)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with create_engine(target).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM instance")).scalar() == 1
