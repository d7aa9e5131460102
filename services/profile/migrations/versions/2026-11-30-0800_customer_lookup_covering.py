"""The unique index on ``customer.external_id`` also holds ``id`` and ``status``.

Every intake request (behaviour events, orders) resolves up to 1,000 external ids to customer
ids, skipping erased customers. With ``id`` and ``status`` in the index that is an index-only
scan, without visiting the table's pages (bench/README.md). The new index is built
concurrently, so a large table keeps taking writes, then takes over the constraint's name.

Revision ID: profile_customer_lookup_1
Revises: profile_0003
Create Date: 2026-11-30 08:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "profile_customer_lookup_1"
down_revision: str | None = "profile_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "profile"


def _swap(columns: str) -> None:
    """Build a unique index on ``external_id`` with ``columns`` and make it the constraint."""
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {SCHEMA}.uq_customer_external_id_next")
        op.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY uq_customer_external_id_next "
            f"ON {SCHEMA}.customer (external_id){columns}"
        )
    op.execute(
        f"ALTER TABLE {SCHEMA}.customer DROP CONSTRAINT uq_customer_external_id, "
        "ADD CONSTRAINT uq_customer_external_id UNIQUE USING INDEX uq_customer_external_id_next"
    )


def upgrade() -> None:
    """``UNIQUE (external_id) INCLUDE (id, status)``."""
    _swap(" INCLUDE (id, status)")


def downgrade() -> None:
    """Back to ``UNIQUE (external_id)``."""
    _swap("")
