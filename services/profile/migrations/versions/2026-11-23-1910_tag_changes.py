"""Tag change history: when each tag was added to or removed from a customer.

Revision ID: profile_tags_1
Revises: profile_0003
Create Date: 2026-11-23 19:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "profile_tags_1"
down_revision: str | None = "profile_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "customer_tag_change",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["profile.customer.id"],
            name=op.f("fk_customer_tag_change_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_tag_change")),
        schema="profile",
    )
    op.create_index(
        "ix_customer_tag_change_customer_changed",
        "customer_tag_change",
        ["customer_id", "changed_at"],
        unique=False,
        schema="profile",
    )
    op.create_index(
        "ix_customer_tag_change_customer_tag",
        "customer_tag_change",
        ["customer_id", "tag", "origin"],
        unique=False,
        schema="profile",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(
        "ix_customer_tag_change_customer_tag", table_name="customer_tag_change", schema="profile"
    )
    op.drop_index(
        "ix_customer_tag_change_customer_changed",
        table_name="customer_tag_change",
        schema="profile",
    )
    op.drop_table("customer_tag_change", schema="profile")
