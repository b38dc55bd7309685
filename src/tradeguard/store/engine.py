"""Engines for the two supported databases, configured the one safe way.

SQLite (the embedded default): the file is created 0600 before SQLite writes its first byte, so
there is no moment when the database is readable by others; SQLite gives its `-wal` and `-shm`
files the database file's mode. Every connection runs in WAL mode with foreign keys on, a busy
timeout (concurrent writers wait instead of failing), `synchronous=FULL` (a commit survives power
loss: audit entries must) and `secure_delete` (deleted credentials are overwritten, not left in
free pages).

PostgreSQL (scale-out): psycopg 3, pre-ping on checkout, a connect timeout, and an
application_name that shows up in `pg_stat_activity`.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from tradeguard.core.errors import InsecurePermissionsError, StorageError
from tradeguard.core.permissions import create_private_file, exposure_problem
from tradeguard.secrets.redact import redact_text
from tradeguard.store.url import DatabaseTarget

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "check_sqlite_files",
    "connect_check",
    "create_engine",
    "for_writing",
    "sqlite_files",
    "text_decoded",
]

SQLITE_BUSY_TIMEOUT_MS = 5000
_IMMEDIATE = "tradeguard_begin_immediate"
_SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = FULL",
    "PRAGMA secure_delete = ON",
)


def sqlite_files(path: Path) -> list[Path]:
    """The database file and the WAL and shared-memory files SQLite keeps beside it."""
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def check_sqlite_files(path: Path) -> bool:
    """Whether the database exists; raises if it, its -wal or its -shm is not private.

    Read-only: the engine factory and `doctor` share it.
    """
    exists = False
    for file in sqlite_files(path):
        try:
            st = file.stat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{file} is not a regular file; move it away or pick another path")
        problem = exposure_problem(file, st, "file")
        if problem:
            raise InsecurePermissionsError(f"database: {problem}")
        exists = exists or file == path
    return exists


def _prepare_sqlite_file(path: Path) -> None:
    if check_sqlite_files(path):
        return
    if not path.parent.is_dir():
        raise StorageError(
            f"the directory of the SQLite database, {path.parent}, does not exist; create it "
            "(mode 700) or fix TRADEGUARD_DATABASE_URL"
        )
    try:
        create_private_file(path)
    except FileExistsError:
        check_sqlite_files(path)  # another process created it first; check what it made
    except OSError as e:
        raise StorageError(f"cannot create the database {path} ({e.strerror})") from None


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling starts transactions late and commits DDL implicitly;
    # turn it off and let the "begin" hook below emit BEGIN (SQLAlchemy's documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _on_sqlite_begin(connection: sa.Connection) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def for_writing(connection: sa.Connection) -> sa.Connection:
    """Mark a connection whose next transaction reads and then writes.

    On SQLite its transactions start with BEGIN IMMEDIATE: the write lock is taken up front, so
    two such transactions queue on the busy timeout instead of one failing when it tries to
    upgrade its read lock. (On PostgreSQL, lock the rows read with SELECT ... FOR UPDATE.)
    """
    return connection.execution_options(**{_IMMEDIATE: True})


def _sqlite_engine(target: DatabaseTarget) -> Engine:
    _prepare_sqlite_file(target.sqlite_file())
    engine = sa.create_engine(target.url)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _postgres_engine(target: DatabaseTarget) -> Engine:
    connect_args: dict[str, Any] = {"application_name": "tradeguard"}
    if "connect_timeout" not in target.url.query:
        connect_args["connect_timeout"] = 10
    return sa.create_engine(target.url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_read_only_engine(target: DatabaseTarget) -> Engine:
    check_sqlite_files(target.sqlite_file())
    url = sa.URL.create(
        "sqlite",
        database=f"file:{target.sqlite_file()}?mode=ro",
        query={"uri": "true", "timeout": str(SQLITE_BUSY_TIMEOUT_MS / 1000)},
    )
    return sa.create_engine(url)


def create_engine(target: DatabaseTarget, *, read_only: bool = False) -> Engine:
    """An engine for `target`. For SQLite this creates the (private) file if it is missing.

    `read_only` (for inspection, e.g. `doctor`) opens an existing SQLite file without creating
    or converting anything; on PostgreSQL it is an ordinary engine that the caller only reads.
    """
    if target.backend == "sqlite":
        return _sqlite_read_only_engine(target) if read_only else _sqlite_engine(target)
    return _postgres_engine(target)


def connect_check(engine: Engine, target: DatabaseTarget) -> None:
    """Connect once, turning a driver error into one line that says where and why."""
    try:
        with engine.connect():
            pass
    except DBAPIError as e:
        reason = redact_text(str(e.orig).strip().splitlines()[0]) if e.orig else type(e).__name__
        raise StorageError(
            f"cannot open the database ({target.describe()}): {reason}; check "
            "TRADEGUARD_DATABASE_URL and that the server is running"
        ) from None


@contextmanager
def text_decoded(conn: sa.Connection, errors: str) -> Iterator[None]:
    """Text columns read on `conn` inside the block decode UTF-8 with `errors` ("replace",
    "surrogateescape"). SQLite keeps any bytes in a text column, and its driver fails the whole
    read on bytes that are not UTF-8; PostgreSQL stores only valid UTF-8, so there nothing
    changes."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver: Any = conn.connection.driver_connection
    previous = driver.text_factory
    driver.text_factory = lambda raw: raw.decode("utf-8", errors)
    try:
        yield
    finally:
        driver.text_factory = previous
