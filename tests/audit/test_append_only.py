"""The database itself keeps the audit tables append-only, whoever connects: the triggers of
migration 0003 on SQLite and PostgreSQL, and on PostgreSQL a role without UPDATE/DELETE grants
(the migration's docstring) that refuses even with the triggers gone. Deleting is allowed only
below a signed prune boundary, which `audit prune` writes and `verify` checks.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from tests.audit.conftest import AuditStore

from tradeguard.audit import verify
from tradeguard.audit.merkle import Frontier, leaf_hash
from tradeguard.audit.prune import PruneError
from tradeguard.audit.retention import prune
from tradeguard.core.events import EventName

TABLES = ("audit_log", "audit_tree_heads", "audit_nodes", "audit_prunes")
KEYS = {
    "audit_log": "seq",
    "audit_tree_heads": "size",
    "audit_nodes": "idx",
    "audit_prunes": "first_seq",
}
CHANGES = {
    "audit_log": "details = '{}'",
    "audit_tree_heads": "ts = ts + 1",
    "audit_nodes": "hash = root_of_evil",
    "audit_prunes": "ts = ts + 1",
}
USED = EventName.VAULT_CREDENTIAL_USED


def rows(conn: sa.Connection, table: str) -> list[tuple[Any, ...]]:
    key = KEYS[table]
    return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {key}")]  # noqa: S608


def count(engine: sa.Engine, table: str = "audit_log") -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())  # noqa: S608


@pytest.fixture
def filled(audit_store: AuditStore) -> AuditStore:
    """A store with a row in every audit table: entries and heads from the log, a stored node
    and a prune record (at boundary 0, so it allows no delete) inserted as raw rows."""
    with audit_store.log(head_every=4) as log:
        for i in range(10):
            log.append(USED, actor="operator", subject=f"credential:{i}", details={"n": i})
    with audit_store.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO audit_nodes (level, idx, hash) VALUES (8, 0, :h)"),
            {"h": secrets.token_bytes(32)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO audit_prunes (first_seq, ts, frontier, key_version, signature) "
                "VALUES (0, 1, :f, 1, :s)"
            ),
            {"f": b"", "s": secrets.token_bytes(64)},
        )
    return audit_store


def refused(engine: sa.Engine, table: str, statement: str, **params: object) -> None:
    """`statement` fails with the trigger's message, and `table` is as it was."""
    with engine.connect() as conn:
        before = rows(conn, table)
    assert before, f"{table} has no row to change"
    with pytest.raises(sa.exc.IntegrityError) as raised, engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    message = str(raised.value.orig)
    assert table in message
    assert "append-only" in message
    with engine.connect() as conn:
        assert rows(conn, table) == before


@pytest.mark.parametrize("table", TABLES)
def test_update_is_refused(filled: AuditStore, table: str) -> None:
    change = CHANGES[table].replace("root_of_evil", ":h")
    refused(filled.engine, table, f"UPDATE {table} SET {change}", h=bytes(32))  # noqa: S608


@pytest.mark.parametrize("table", TABLES)
def test_update_of_one_row_is_refused(filled: AuditStore, table: str) -> None:
    change = CHANGES[table].replace("root_of_evil", ":h")
    key = KEYS[table]
    statement = f"UPDATE {table} SET {change} WHERE {key} = (SELECT MAX({key}) FROM {table})"  # noqa: S608
    refused(filled.engine, table, statement, h=bytes(32))


@pytest.mark.parametrize("table", TABLES)
def test_delete_is_refused(filled: AuditStore, table: str) -> None:
    key = KEYS[table]
    statement = f"DELETE FROM {table} WHERE {key} = (SELECT MAX({key}) FROM {table})"  # noqa: S608
    refused(filled.engine, table, statement)
    refused(filled.engine, table, f"DELETE FROM {table}")  # noqa: S608


def test_rewriting_the_seq_is_refused(filled: AuditStore) -> None:
    refused(filled.engine, "audit_log", "UPDATE audit_log SET seq = seq + 100 WHERE seq = 9")


@pytest.mark.parametrize("table", TABLES)
def test_truncate_is_refused_on_postgresql(filled: AuditStore, table: str) -> None:
    if filled.target.backend != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's (SQLite has none: DELETE without WHERE is refused)")
    refused(filled.engine, table, f"TRUNCATE {table}")


def test_the_log_still_appends_and_verifies(filled: AuditStore) -> None:
    """The refused statements left nothing half-done: the log goes on."""
    for table in TABLES:
        with pytest.raises(sa.exc.IntegrityError), filled.engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
    with filled.log() as log:
        assert log.append(USED) == 10


# -- PostgreSQL: the application's role cannot change history even without the triggers -------


@pytest.fixture
def app_role(filled: AuditStore) -> Iterator[tuple[str, str]]:
    """(role, schema): a NOLOGIN role granted what the migration's docstring says the server's
    role gets, in the test's schema; dropped afterwards."""
    if filled.target.backend != "postgresql":
        pytest.skip("roles and grants are PostgreSQL's")
    role = f"tg_app_{secrets.token_hex(6)}"
    with filled.engine.begin() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        for statement in (
            f"CREATE ROLE {role} NOLOGIN",
            # The docstring grants on `public`, where every role has USAGE already.
            f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}',
            f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}',
            f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_nodes, audit_tree_heads, "
            f"audit_prunes FROM {role}",
        ):
            conn.exec_driver_sql(statement)
    try:
        yield role, schema
    finally:
        with filled.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")


def as_role(
    conn: sa.Connection, role: str, statement: str, **params: object
) -> list[tuple[Any, ...]]:
    """Run `statement` as `role` inside a savepoint, so that a refused one does not end the
    test's transaction (rolling back to the savepoint undoes the SET ROLE too); its rows."""
    with conn.begin_nested():
        conn.exec_driver_sql(f"SET LOCAL ROLE {role}")
        result = conn.execute(sa.text(statement), params)
        found = [tuple(r) for r in result] if result.returns_rows else []
        conn.exec_driver_sql("RESET ROLE")
    return found


def test_the_app_role_cannot_change_history_without_the_triggers(
    filled: AuditStore, app_role: tuple[str, str]
) -> None:
    role, _ = app_role
    engine = filled.engine
    with engine.begin() as conn:  # the owner drops every trigger: the grants alone must hold
        for table in TABLES:
            conn.exec_driver_sql(f"DROP TRIGGER {table}_no_change ON {table}")
            conn.exec_driver_sql(f"DROP TRIGGER {table}_no_truncate ON {table}")
    leaf = leaf_hash(b"raw")
    with engine.begin() as conn:
        assert as_role(conn, role, "SELECT COUNT(*) FROM audit_log") == [(10,)]
        as_role(
            conn,
            role,
            "INSERT INTO audit_log (seq, ts, event, actor, subject, ip, details, leaf_hash, "
            "key_version, mac) VALUES (10, 1, 'vault.credential.used', NULL, NULL, NULL, '{}', "
            ":leaf, 1, :mac)",
            leaf=leaf,
            mac=bytes(32),
        )
        as_role(conn, role, "INSERT INTO audit_nodes (level, idx, hash) VALUES (9, 0, :h)", h=leaf)
        as_role(conn, role, "UPDATE audit_state SET last_head_ts = last_head_ts")  # appenders do
        for table in TABLES:
            before = rows(conn, table)
            key = KEYS[table]
            for statement in (
                f"UPDATE {table} SET {key} = {key}",  # noqa: S608
                f"DELETE FROM {table}",  # noqa: S608
                f"TRUNCATE {table}",
            ):
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                    as_role(conn, role, statement)
            assert rows(conn, table) == before
        assert as_role(conn, role, "SELECT COUNT(*) FROM audit_log") == [(11,)]
    with engine.begin() as conn:  # the owner could (which is why the triggers exist)
        assert conn.exec_driver_sql("DELETE FROM audit_nodes WHERE level = 9").rowcount == 1


# -- prune: deletes below a signed boundary only ----------------------------------------------


@pytest.fixture
def aged(audit_store: AuditStore) -> AuditStore:
    """20 entries 100 days before the clock's start, then 10 at it."""
    store = audit_store
    past = store.clock.now() - timedelta(days=100)
    with store.log(head_every=8) as log:
        for i in range(20):
            log.append(USED, subject=f"user:{i}", details={"n": i}, at=past + timedelta(hours=i))
        for i in range(20, 30):
            log.append(USED, subject=f"user:{i}", details={"n": i})
    return store


def test_prune_deletes_below_the_boundary_and_the_log_verifies(aged: AuditStore) -> None:
    now = aged.clock.now()
    result = prune(
        aged.engine, aged.keys, before=now - timedelta(days=90), now=now, minimum_days=90
    )
    assert (result.first_seq, result.deleted) == (20, 20)
    with aged.engine.connect() as conn:
        seqs = [r[0] for r in conn.exec_driver_sql("SELECT seq FROM audit_log ORDER BY seq")]
    assert seqs == list(range(20, 30))
    report = verify(aged.engine, aged.keys, against=aged.checkpoints)
    assert report.ok, report.findings
    assert (report.first_seq, report.size, report.entries) == (20, 30, 10)
    # At and above the boundary the triggers still refuse; the log goes on after the prune.
    refused(aged.engine, "audit_log", "DELETE FROM audit_log WHERE seq = 20")
    refused(aged.engine, "audit_log", "DELETE FROM audit_log WHERE seq >= 20")
    refused(aged.engine, "audit_log", "UPDATE audit_log SET ts = 0 WHERE seq = 25")
    refused(aged.engine, "audit_prunes", "DELETE FROM audit_prunes")
    with aged.log() as log:
        assert log.append(USED) == 30
    assert verify(aged.engine, aged.keys, against=aged.checkpoints).ok


def test_prune_of_every_entry_leaves_a_log_that_verifies(aged: AuditStore) -> None:
    """No entry left after the boundary (verify once raised AssertionError on an empty chunk)."""
    aged.clock.advance(timedelta(days=100).total_seconds())
    now = aged.clock.now()
    before = now - timedelta(days=90)  # after every entry
    result = prune(aged.engine, aged.keys, before=before, now=now, minimum_days=90)
    assert (result.first_seq, result.deleted) == (30, 30)
    assert count(aged.engine) == 0
    report = verify(aged.engine, aged.keys, against=aged.checkpoints)
    assert report.ok, report.findings
    assert (report.first_seq, report.size, report.entries) == (30, 30, 0)


def test_prune_newer_than_the_minimum_is_refused(aged: AuditStore) -> None:
    now = aged.clock.now()
    with pytest.raises(PruneError, match="90 days"):
        prune(aged.engine, aged.keys, before=now - timedelta(days=89), now=now, minimum_days=90)
    assert count(aged.engine) == 30
    assert count(aged.engine, "audit_prunes") == 0
    # Nothing below the (absent) boundary may go either.
    refused(aged.engine, "audit_log", "DELETE FROM audit_log WHERE seq = 0")


def test_prune_of_a_tampered_log_is_refused(aged: AuditStore) -> None:
    with aged.engine.begin() as conn:
        if aged.target.backend == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.exec_driver_sql("UPDATE audit_log SET details = '{\"n\":99}' WHERE seq = 3")
    now = aged.clock.now()
    with pytest.raises(PruneError, match="does not verify"):
        prune(aged.engine, aged.keys, before=now - timedelta(days=90), now=now, minimum_days=90)
    assert count(aged.engine) == 30
    assert count(aged.engine, "audit_prunes") == 0


def forge_prune(store: AuditStore, first_seq: int, frontier: bytes) -> None:
    """What someone without the audit key can do with the triggers in place: insert a prune
    record (inserts are allowed) with a made-up signature."""
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_prunes (first_seq, ts, frontier, key_version, signature) "
                "VALUES (:seq, :ts, :frontier, :version, :signature)"
            ),
            {
                "seq": first_seq,
                "ts": 1,
                "frontier": frontier,
                "version": store.keys.primary,
                "signature": secrets.token_bytes(64),
            },
        )


def test_forged_prune_record_is_a_bad_signature(aged: AuditStore) -> None:
    # The right compact range of the first 12 entries (anyone can compute it), unsigned.
    frontier = Frontier()
    with aged.engine.connect() as conn:
        for (leaf,) in conn.exec_driver_sql("SELECT leaf_hash FROM audit_log WHERE seq < 12"):
            frontier.append(bytes(leaf))
    forge_prune(aged, 12, frontier.to_bytes())
    with aged.engine.begin() as conn:  # the forged boundary opens the delete trigger below it
        assert conn.exec_driver_sql("DELETE FROM audit_log WHERE seq < 12").rowcount == 12
    report = verify(aged.engine, aged.keys)
    assert not report.ok
    assert (report.findings[0].kind, report.findings[0].seq) == ("bad signature", 12)
    assert "prune" in report.findings[0].message
    report = verify(aged.engine, aged.keys, against=aged.checkpoints)
    assert (report.findings[0].kind, report.findings[0].seq) == ("bad signature", 12)


def test_forged_prune_record_with_a_malformed_frontier_is_a_bad_signature(
    aged: AuditStore,
) -> None:
    """Random bytes of a wrong length where the compact range should be: reported, not a
    crash of `verify`."""
    forge_prune(aged, 12, secrets.token_bytes(40))
    report = verify(aged.engine, aged.keys)
    assert not report.ok
    assert (report.findings[0].kind, report.findings[0].seq) == ("bad signature", 12)
