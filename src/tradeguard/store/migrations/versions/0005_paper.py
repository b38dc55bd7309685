"""The paper venue: accounts, balances, orders, fills and the last candle per symbol.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tradeguard.store.models import DecimalText, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["paper_accounts.id"],
        name=op.f(f"fk_{table}_account_id_paper_accounts"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "paper_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("starting_balances", sa.Text(), nullable=False),
        sa.Column("order_seq", sa.BigInteger(), nullable=False),
        sa.Column("trade_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_paper_accounts_name")),
    )
    op.create_table(
        "paper_balances",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=32), nullable=False),
        sa.Column("free", DecimalText(), nullable=False),
        sa.Column("used", DecimalText(), nullable=False),
        _account_fk("paper_balances"),
        sa.PrimaryKeyConstraint("account_id", "currency", name=op.f("pk_paper_balances")),
    )
    op.create_table(
        "paper_orders",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("venue_order_id", sa.String(length=32), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("time_in_force", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", DecimalText(), nullable=False),
        sa.Column("filled", DecimalText(), nullable=False),
        sa.Column("price", DecimalText(), nullable=True),
        sa.Column("stop_price", DecimalText(), nullable=True),
        sa.Column("average", DecimalText(), nullable=True),
        sa.Column("fee", DecimalText(), nullable=False),
        sa.Column("fee_currency", sa.String(length=32), nullable=True),
        sa.Column("locked", DecimalText(), nullable=False),
        sa.Column("lock_currency", sa.String(length=32), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("triggered", sa.Boolean(), nullable=False),
        sa.Column("fresh", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_paper_orders_side")),
        sa.CheckConstraint(
            "status IN ('open', 'filled', 'canceled', 'rejected', 'expired')",
            name=op.f("ck_paper_orders_status"),
        ),
        _account_fk("paper_orders"),
        sa.PrimaryKeyConstraint("account_id", "seq", name=op.f("pk_paper_orders")),
        sa.UniqueConstraint(
            "account_id", "venue_order_id", name="uq_paper_orders_account_id_venue_order_id"
        ),
        sa.UniqueConstraint(
            "account_id", "client_order_id", name="uq_paper_orders_account_id_client_order_id"
        ),
    )
    op.create_table(
        "paper_trades",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("trade_id", sa.String(length=32), nullable=False),
        sa.Column("venue_order_id", sa.String(length=32), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("price", DecimalText(), nullable=False),
        sa.Column("amount", DecimalText(), nullable=False),
        sa.Column("fee", DecimalText(), nullable=False),
        sa.Column("fee_currency", sa.String(length=32), nullable=False),
        sa.Column("liquidity", sa.String(length=8), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        _account_fk("paper_trades"),
        sa.PrimaryKeyConstraint("account_id", "seq", name=op.f("pk_paper_trades")),
    )
    op.create_table(
        "paper_marks",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("open", DecimalText(), nullable=False),
        sa.Column("high", DecimalText(), nullable=False),
        sa.Column("low", DecimalText(), nullable=False),
        sa.Column("close", DecimalText(), nullable=False),
        sa.Column("volume", DecimalText(), nullable=False),
        _account_fk("paper_marks"),
        sa.PrimaryKeyConstraint("account_id", "symbol", name=op.f("pk_paper_marks")),
    )


def downgrade() -> None:
    op.drop_table("paper_marks")
    op.drop_table("paper_trades")
    op.drop_table("paper_orders")
    op.drop_table("paper_balances")
    op.drop_table("paper_accounts")
