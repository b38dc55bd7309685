"""The vault: users, credentials, encrypted credential fields, vault state, unlock throttle.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tradeguard.store.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("vault_mode", sa.String(length=16), nullable=False),
        sa.Column("wrapped_dek", sa.LargeBinary(), nullable=False),
        sa.Column("dek_version", sa.Integer(), nullable=False),
        sa.Column("encryption_key_version", sa.Integer(), nullable=True),
        sa.Column("kdf_salt", sa.LargeBinary(), nullable=True),
        sa.Column("kdf_memory_kib", sa.Integer(), nullable=True),
        sa.Column("kdf_iterations", sa.Integer(), nullable=True),
        sa.Column("kdf_lanes", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "vault_mode IN ('service', 'password')", name=op.f("ck_users_vault_mode")
        ),
        sa.CheckConstraint(
            "(vault_mode = 'service' AND encryption_key_version IS NOT NULL AND kdf_salt IS NULL)"
            " OR (vault_mode = 'password' AND encryption_key_version IS NULL"
            " AND kdf_salt IS NOT NULL AND kdf_memory_kib IS NOT NULL"
            " AND kdf_iterations IS NOT NULL AND kdf_lanes IS NOT NULL)",
            name=op.f("ck_users_wrapping"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_index(op.f("ix_users_encryption_key_version"), "users", ["encryption_key_version"])
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("venue", sa.String(length=32), nullable=False),
        sa.Column("display", sa.String(length=512), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("rotated_at", UtcDateTime(), nullable=True),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_credentials_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("user_id", "name", name="uq_credentials_user_id_name"),
    )
    op.create_index(op.f("ix_credentials_user_id"), "credentials", ["user_id"])
    op.create_table(
        "credential_fields",
        sa.Column("credential_id", sa.String(length=36), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("dek_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_credential_fields_credential_id_credentials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("credential_id", "field", name=op.f("pk_credential_fields")),
    )
    state = op.create_table(
        "vault_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("min_master_key_version", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_vault_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_state")),
    )
    op.bulk_insert(state, [{"id": 1, "min_master_key_version": 1}])
    op.create_table(
        "vault_unlock_throttle",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_vault_unlock_throttle")),
    )


def downgrade() -> None:
    op.drop_table("vault_unlock_throttle")
    op.drop_table("vault_state")
    op.drop_table("credential_fields")
    op.drop_index(op.f("ix_credentials_user_id"), table_name="credentials")
    op.drop_table("credentials")
    op.drop_index(op.f("ix_users_encryption_key_version"), table_name="users")
    op.drop_table("users")
