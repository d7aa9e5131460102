"""Outbox payloads stored uncompressed (``STORAGE EXTERNAL``).

Outbox rows live until the relay's PubAck, then are deleted; compressing a large payload with
pglz as it is TOASTed (and the relay decompressing it) costs CPU for nothing, and payloads under
2 KiB are never compressed anyway. Applies to rows written from now on.

Revision ID: segment_outbox_storage_1
Revises: segment_0001
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "segment_outbox_storage_1"
down_revision: str | None = "segment_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "segment"


def upgrade() -> None:
    """Store new outbox payloads out of line without compressing them."""
    op.execute(f"ALTER TABLE {SCHEMA}.outbox ALTER COLUMN payload SET STORAGE EXTERNAL")


def downgrade() -> None:
    """Back to the default for ``bytea``: compressed, then out of line."""
    op.execute(f"ALTER TABLE {SCHEMA}.outbox ALTER COLUMN payload SET STORAGE EXTENDED")
