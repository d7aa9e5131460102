"""Idempotency keys of order intake requests.

Revision ID: profile_orders_1
Revises: profile_0003
Create Date: 2026-11-23 19:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "profile_orders_1"
down_revision: str | None = "profile_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "order_request_key",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["profile.order.id"],
            name=op.f("fk_order_request_key_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_order_request_key")),
        schema="profile",
    )
    op.create_index(
        op.f("ix_profile_order_request_key_order_id"),
        "order_request_key",
        ["order_id"],
        unique=False,
        schema="profile",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(
        op.f("ix_profile_order_request_key_order_id"),
        table_name="order_request_key",
        schema="profile",
    )
    op.drop_table("order_request_key", schema="profile")
