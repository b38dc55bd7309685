"""Accounts: login columns on users, sessions and refresh tokens, backup codes, one-time tokens
(password reset, WebSocket tickets, first-admin setup) and the addresses users come from.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tradeguard.store.models import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_USER_COLUMNS = (
    ("email", sa.String(length=254)),
    ("password_hash", sa.String(length=256)),
    ("password_changed_at", UtcDateTime()),
    ("totp_secret", sa.LargeBinary()),
    ("totp_key_version", sa.Integer()),
    ("totp_enabled_at", UtcDateTime()),
    ("totp_last_step", sa.BigInteger()),
    ("disabled_at", UtcDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=16), server_default="trader", nullable=False)
        )
        for name, type_ in _USER_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
        batch.create_unique_constraint(op.f("uq_users_email"), ["email"])
        batch.create_check_constraint(
            op.f("ck_users_role"), "role IN ('admin', 'trader', 'viewer')"
        )
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
    )  # fmt: skip
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"])
    op.create_table(
        "auth_refresh_tokens",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"], ["auth_sessions.id"],
            name=op.f("fk_auth_refresh_tokens_session_id_auth_sessions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_refresh_tokens")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_auth_refresh_tokens_session_id"), "auth_refresh_tokens", ["session_id"]
    )
    op.create_table(
        "auth_backup_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_backup_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_backup_codes")),
        sa.UniqueConstraint("user_id", "code_hash", name=op.f("uq_auth_backup_codes_user_id")),
    )  # fmt: skip
    op.create_index(op.f("ix_auth_backup_codes_user_id"), "auth_backup_codes", ["user_id"])
    op.create_table(
        "auth_one_time_tokens",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=8), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("bound_to", sa.String(length=64), nullable=True),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("consumed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('reset', 'ws', 'setup')", name=op.f("ck_auth_one_time_tokens_purpose")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_one_time_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_one_time_tokens")),
    )  # fmt: skip
    op.create_index(op.f("ix_auth_one_time_tokens_user_id"), "auth_one_time_tokens", ["user_id"])
    op.create_index(
        op.f("ix_auth_one_time_tokens_expires_at"), "auth_one_time_tokens", ["expires_at"]
    )
    op.create_table(
        "auth_user_addresses",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('login', 'trade')", name=op.f("ck_auth_user_addresses_kind")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_user_addresses_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "ip", "kind", name=op.f("pk_auth_user_addresses")),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("auth_user_addresses")
    op.drop_index(op.f("ix_auth_one_time_tokens_expires_at"), table_name="auth_one_time_tokens")
    op.drop_index(op.f("ix_auth_one_time_tokens_user_id"), table_name="auth_one_time_tokens")
    op.drop_table("auth_one_time_tokens")
    op.drop_index(op.f("ix_auth_backup_codes_user_id"), table_name="auth_backup_codes")
    op.drop_table("auth_backup_codes")
    op.drop_index(op.f("ix_auth_refresh_tokens_session_id"), table_name="auth_refresh_tokens")
    op.drop_table("auth_refresh_tokens")
    op.drop_index(op.f("ix_auth_sessions_user_id"), table_name="auth_sessions")
    op.drop_table("auth_sessions")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_role"), type_="check")
        batch.drop_constraint(op.f("uq_users_email"), type_="unique")
        for name, _ in reversed(_USER_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("role")
