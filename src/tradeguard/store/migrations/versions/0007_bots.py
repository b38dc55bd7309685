"""Bots and the fill ledger: the bot registry and every fill booked to a bot.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tradeguard.store.models import DecimalText, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_fills",
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("trade_id", sa.String(length=128), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("amount", DecimalText(), nullable=False),
        sa.Column("price", DecimalText(), nullable=False),
        sa.Column("fee", DecimalText(), nullable=False),
        sa.Column("fee_currency", sa.String(length=32), nullable=False),
        sa.Column("filled_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account", "trade_id", name=op.f("pk_risk_fills")),
    )
    op.create_index(op.f("ix_risk_fills_bot"), "risk_fills", ["bot"])
    op.create_index(op.f("ix_risk_fills_client_order_id"), "risk_fills", ["client_order_id"])
    op.create_table(
        "bots",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots")),
        sa.UniqueConstraint("name", name=op.f("uq_bots_name")),
    )
    op.create_index(op.f("ix_bots_user_name"), "bots", ["user_name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_bots_user_name"), table_name="bots")
    op.drop_table("bots")
    op.drop_index(op.f("ix_risk_fills_client_order_id"), table_name="risk_fills")
    op.drop_index(op.f("ix_risk_fills_bot"), table_name="risk_fills")
    op.drop_table("risk_fills")
