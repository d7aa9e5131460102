"""The shop's free customer attributes in the projection (rules test them).

Revision ID: segment_0004
Revises: segment_0003
Create Date: 2026-11-30 02:51:10.733498+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "segment_0004"
down_revision: str | None = "segment_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "customer",
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        schema="segment",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("customer", "attributes", schema="segment")
