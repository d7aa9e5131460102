"""Customer projection and erased-customer tombstones.

Revision ID: segment_0002
Revises: segment_0001
Create Date: 2026-11-23 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "segment_0002"
down_revision: str | None = "segment_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "segment"


def upgrade() -> None:
    """Create ``customer`` and ``erased_customer``."""
    op.create_table(
        "customer",
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("merged_into_external_id", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("locale", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("gender", sa.Text(), nullable=True),
        sa.Column("birthday_month", sa.SmallInteger(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_channel", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "projected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("customer_external_id", name=op.f("pk_customer")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_segment_customer_merged_into_external_id"),
        "customer",
        ["merged_into_external_id"],
        unique=False,
        schema=SCHEMA,
    )
    op.create_table(
        "erased_customer",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_erased_customer")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    """Drop ``erased_customer`` and ``customer``."""
    op.drop_table("erased_customer", schema=SCHEMA)
    op.drop_index(
        op.f("ix_segment_customer_merged_into_external_id"), table_name="customer", schema=SCHEMA
    )
    op.drop_table("customer", schema=SCHEMA)
