"""Engines: private SQLite files, the pragmas on every connection, PostgreSQL connect errors."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tradeguard.core.errors import InsecurePermissionsError, StorageError
from tradeguard.secrets import Secret
from tradeguard.store import connect_check, create_engine, resolve_database, upgrade
from tradeguard.store.engine import sqlite_files
from tradeguard.store.url import DatabaseTarget


@pytest.fixture
def sqlite_target(tmp_path: Path) -> DatabaseTarget:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    return resolve_database(None, data_dir, production=False)


def test_the_file_exists_0600_and_empty_before_sqlite_writes(sqlite_target: DatabaseTarget) -> None:
    old = os.umask(0)
    try:
        create_engine(sqlite_target)  # no connection made yet
    finally:
        os.umask(old)
    st = sqlite_target.sqlite_file().stat()
    assert (st.st_mode & 0o777, st.st_size) == (0o600, 0)


def test_database_wal_and_shm_are_private_under_a_permissive_umask(
    sqlite_target: DatabaseTarget,
) -> None:
    old = os.umask(0)
    try:
        engine = create_engine(sqlite_target)
        upgrade(engine, sqlite_target)
        with engine.begin() as conn:  # keep a connection open so -wal and -shm exist
            conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
            conn.exec_driver_sql("INSERT INTO t VALUES ('x')")
            files = sqlite_files(sqlite_target.sqlite_file())
            assert all(f.exists() for f in files)
            modes = {f.name: f.stat().st_mode & 0o777 for f in files}
    finally:
        os.umask(old)
        engine.dispose()
    assert set(modes.values()) == {0o600}, modes


@pytest.mark.parametrize("which", [0, 1, 2])
def test_an_existing_database_file_open_to_others_is_refused(
    sqlite_target: DatabaseTarget, which: int
) -> None:
    target_file = sqlite_files(sqlite_target.sqlite_file())[which]
    target_file.write_bytes(b"")
    target_file.chmod(0o644)
    with pytest.raises(InsecurePermissionsError, match=f"run: chmod 600 {target_file}$"):
        create_engine(sqlite_target)


def test_every_connection_gets_the_pragmas(sqlite_target: DatabaseTarget) -> None:
    engine = create_engine(sqlite_target)
    for _ in range(2):  # a fresh pool connection each time
        with engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 5000
            assert pragma("synchronous") == 2  # FULL
            assert pragma("secure_delete") == 1
        engine.dispose()


def test_foreign_keys_are_enforced(sqlite_target: DatabaseTarget) -> None:
    engine = create_engine(sqlite_target)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE child (parent_id INTEGER REFERENCES parent(id))")
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO child VALUES (42)")


def test_a_second_writer_waits_for_the_first_instead_of_failing(
    sqlite_target: DatabaseTarget,
) -> None:
    first, second = create_engine(sqlite_target), create_engine(sqlite_target)
    with first.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (who TEXT)")
    holding = threading.Event()

    def hold_the_write_lock() -> None:
        with first.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES ('first')")
            holding.set()
            time.sleep(0.5)

    thread = threading.Thread(target=hold_the_write_lock)
    thread.start()
    holding.wait()
    with second.begin() as conn:  # blocks on the lock, within busy_timeout
        conn.exec_driver_sql("INSERT INTO t VALUES ('second')")
    thread.join()
    with second.connect() as conn:
        assert conn.exec_driver_sql("SELECT who FROM t ORDER BY rowid").scalars().all() == [
            "first",
            "second",
        ]


def test_a_rolled_back_transaction_leaves_nothing(sqlite_target: DatabaseTarget) -> None:
    engine = create_engine(sqlite_target)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")

    def insert_then_fail() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0


def test_the_read_only_engine_cannot_write(sqlite_target: DatabaseTarget) -> None:
    upgrade(create_engine(sqlite_target), sqlite_target)
    engine = create_engine(sqlite_target, read_only=True)
    with pytest.raises(sa.exc.OperationalError, match="readonly"), engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM instance")


def test_a_missing_directory_for_an_explicit_sqlite_path_is_reported(tmp_path: Path) -> None:
    target = resolve_database(Secret(f"sqlite:///{tmp_path}/nope/x.db"), tmp_path, production=False)
    with pytest.raises(StorageError, match="does not exist; create it"):
        create_engine(target)


def test_an_unreachable_postgres_is_one_line_without_the_password(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(12)
    target = resolve_database(
        Secret(f"postgresql://tg:{password}@127.0.0.1:1/tg"), tmp_path, production=False
    )
    engine = create_engine(target)
    with pytest.raises(StorageError) as raised:
        connect_check(engine, target)
    message = str(raised.value)
    assert message.startswith("cannot open the database (PostgreSQL postgresql+psycopg://tg:***@")
    assert "\n" not in message
    assert password not in message
