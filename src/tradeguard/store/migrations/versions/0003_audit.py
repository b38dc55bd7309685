"""The audit log: entries, the appenders' state, stored subtree hashes, signed tree heads, prunes.

The database itself refuses to change history, not only our code: on both SQLite and PostgreSQL
triggers abort every UPDATE of an audit row and every DELETE except below the boundary of a
recorded prune (`tradeguard audit prune`, which signs what it cuts off). On PostgreSQL, TRUNCATE
is refused too.

Triggers stop mistakes and casual edits; someone who owns the database can drop them, and the
Merkle tree, the keyed entry MACs and the signed tree heads (kept off the host as well) are what
catch that person. On PostgreSQL, run the server as a role that cannot drop triggers or change
rows in the first place; as the database owner:

    CREATE ROLE tradeguard_app LOGIN PASSWORD '...';
    GRANT USAGE ON SCHEMA public TO tradeguard_app;   -- or the schema tradeguard lives in
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tradeguard_app;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO tradeguard_app;
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_nodes, audit_tree_heads, audit_prunes
        FROM tradeguard_app;
    -- `audit prune` is an operator's job: run it as the owner role.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (table, the column a prune boundary applies to, or None when rows are never deleted)
APPEND_ONLY = (
    ("audit_log", "seq"),
    ("audit_tree_heads", "size"),
    ("audit_nodes", None),
    ("audit_prunes", None),
)
_BOUNDARY = "(SELECT COALESCE(MAX(first_seq), 0) FROM audit_prunes)"


def _create_tables() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=256), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("mac", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    state = op.create_table(
        "audit_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("last_head_size", sa.BigInteger(), nullable=False),
        sa.Column("last_head_ts", sa.BigInteger(), nullable=False),
        sa.Column("pepper_version", sa.Integer(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_state")),
    )
    empty_root = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    op.bulk_insert(
        state,
        [
            {
                "id": 1,
                "size": 0,
                "frontier": b"",
                "root": empty_root,
                "last_head_size": 0,
                "last_head_ts": 0,
                "pepper_version": None,
            }
        ],
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_nodes")),
    )
    op.create_table(
        "audit_tree_heads",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_tree_heads")),
    )
    op.create_table(
        "audit_prunes",
        sa.Column("first_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("first_seq", name=op.f("pk_audit_prunes")),
    )


def _sqlite_triggers(table: str, boundary_column: str | None) -> list[str]:
    refuse = f"SELECT RAISE(ABORT, '{table} is append-only')"
    delete_when = (
        f" WHEN OLD.{boundary_column} >= {_BOUNDARY}" if boundary_column is not None else ""
    )
    return [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN {refuse}; END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}{delete_when} "
        f"BEGIN {refuse}; END",
    ]


def _postgres_triggers(table: str, boundary_column: str | None) -> list[str]:
    allow = (
        # Nested: OLD does not exist in the statement-level TRUNCATE trigger.
        f"IF TG_OP = 'DELETE' THEN IF OLD.{boundary_column} < {_BOUNDARY} THEN RETURN OLD; "
        "END IF; END IF;"
        if boundary_column is not None
        else ""
    )
    function = f"{table}_append_only"
    return [
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {allow} "
        f"RAISE EXCEPTION '{table} is append-only' "
        "USING ERRCODE = 'integrity_constraint_violation'; END $$",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


def upgrade() -> None:
    _create_tables()
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, boundary_column in APPEND_ONLY:
        statements = (
            _postgres_triggers(table, boundary_column)
            if postgres
            else _sqlite_triggers(table, boundary_column)
        )
        for statement in statements:
            op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _ in reversed(APPEND_ONLY):
        op.drop_table(table)  # drops its triggers with it
        if postgres:
            op.execute(f"DROP FUNCTION {table}_append_only()")
    op.drop_table("audit_state")
