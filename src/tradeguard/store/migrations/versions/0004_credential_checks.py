"""Credentials: the last key-permission check, the key's expiry, and the trading block.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tradeguard.store.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("permissions", sa.Text()),
    ("permissions_checked_at", UtcDateTime()),
    ("key_expires_at", UtcDateTime()),
    ("blocked_at", UtcDateTime()),
    ("blocked_reason", sa.String(length=512)),
)


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
