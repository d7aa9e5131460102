"""Tombstones of erased external customer ids (SHA-256 digests), refusing late events.

Revision ID: segment_erasure_1
Revises: segment_0004
Create Date: 2026-11-30 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "segment_erasure_1"
down_revision: str | None = "segment_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "segment"


def upgrade() -> None:
    """Create ``erased_external_id``."""
    op.create_table(
        "erased_external_id",
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_erased_external_id")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    """Drop ``erased_external_id``."""
    op.drop_table("erased_external_id", schema=SCHEMA)
