"""The instance table: one row naming this installation.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import tradeguard
from tradeguard.store.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    instance = op.create_table(
        "instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by_version", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_instance_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance")),
        sa.UniqueConstraint("instance_id", name=op.f("uq_instance_instance_id")),
    )
    op.bulk_insert(
        instance,
        [
            {
                "id": 1,
                "instance_id": str(uuid.uuid4()),
                "created_at": datetime.now(UTC),
                "created_by_version": tradeguard.__version__,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("instance")
