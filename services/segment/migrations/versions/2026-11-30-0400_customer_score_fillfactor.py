"""``customer_score`` with free space in its pages, so the daily batch updates in place.

The daily RFM batch rewrites the RFM columns of nearly every row (every recency grows by a
day) and the CLV predictions of every buyer. With full pages each update puts the new row
version on another page and adds entries to all four indexes; with 30 % of each page free
and none of the indexed columns (``rfm_group``, ``lifecycle``, ``cluster_id``) changed, an
update can be heap-only (HOT): same page, no index writes, the old version pruned when the
page is next read. Applies to pages written from now on (a ``VACUUM FULL`` repacks older ones).

Revision ID: segment_0005
Revises: segment_erasure_1
Create Date: 2026-11-30 04:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "segment_0005"
down_revision: str | None = "segment_erasure_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.execute("ALTER TABLE segment.customer_score SET (fillfactor = 70)")


def downgrade() -> None:
    """Revert this revision."""
    op.execute("ALTER TABLE segment.customer_score RESET (fillfactor)")
