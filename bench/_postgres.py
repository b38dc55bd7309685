"""A throw-away PostgreSQL schema for a benchmark run."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tradeguard.secrets import Secret
from tradeguard.store import DatabaseTarget, resolve_database


@contextmanager
def postgres_schema(base: str) -> Iterator[tuple[DatabaseTarget, str]]:
    """A fresh schema of the test database (its target and libpq URL), dropped afterwards."""
    schema = f"tg_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(base, connect_args={"connect_timeout": 3})
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
            text = url.render_as_string(hide_password=False)
            libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
            with tempfile.TemporaryDirectory() as tmp:
                yield resolve_database(Secret(text), Path(tmp), production=False), libpq
        finally:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
