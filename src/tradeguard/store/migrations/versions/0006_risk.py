"""The risk engine: trading states, breaker trips, bot books and closed trades.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tradeguard.store.models import DecimalText, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_states",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("state IN ('REDUCING', 'HALTED')", name=op.f("ck_risk_states_state")),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_risk_states")),
    )
    op.create_table(
        "risk_trips",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("breaker", sa.String(length=32), nullable=False),
        sa.Column("value", DecimalText(), nullable=False),
        sa.Column("limit", DecimalText(), nullable=False),
        sa.Column("tripped_at", UtcDateTime(), nullable=False),
        sa.Column("reset_at", UtcDateTime(), nullable=True),
        sa.Column("reset_by", sa.String(length=256), nullable=True),
        sa.Column("reset_reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_trips")),
    )
    op.create_index(op.f("ix_risk_trips_scope"), "risk_trips", ["scope"])
    op.create_table(
        "risk_bots",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("capital", DecimalText(), nullable=False),
        sa.Column("book", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("promoted_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("mode IN ('paper', 'live')", name=op.f("ck_risk_bots_mode")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_risk_bots")),
    )
    op.create_table(
        "risk_users",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("meters", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_risk_users")),
    )
    op.create_table(
        "risk_trades",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("pnl", DecimalText(), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_trades")),
    )
    op.create_index(op.f("ix_risk_trades_bot"), "risk_trades", ["bot"])
    op.create_table(
        "risk_orders",
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_order_id", name=op.f("pk_risk_orders")),
    )
    op.create_index(op.f("ix_risk_orders_bot"), "risk_orders", ["bot"])


def downgrade() -> None:
    op.drop_index(op.f("ix_risk_orders_bot"), table_name="risk_orders")
    op.drop_table("risk_orders")
    op.drop_index(op.f("ix_risk_trades_bot"), table_name="risk_trades")
    op.drop_table("risk_trades")
    op.drop_table("risk_users")
    op.drop_table("risk_bots")
    op.drop_index(op.f("ix_risk_trips_scope"), table_name="risk_trips")
    op.drop_table("risk_trips")
    op.drop_table("risk_states")
