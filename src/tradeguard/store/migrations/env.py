"""Alembic environment: always run on a connection handed in by tradeguard.store.schema."""

from __future__ import annotations

from alembic import context

from tradeguard.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    # SQLite's DDL is transactional once pysqlite's implicit transactions are off (store.engine):
    # a migration that fails half way leaves nothing behind, as on PostgreSQL.
    transactional_ddl=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
