"""Customers, identities, merges, consent, tags, behaviour events, orders, GDPR jobs.

Revision ID: profile_0002
Revises: profile_0001
Create Date: 2026-11-23 18:21:21.838115+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "profile_0002"
down_revision: str | None = "profile_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "behaviour_event",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("customer_external_id", sa.Text(), nullable=True),
        sa.Column("anonymous_id", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sku", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("value_minor", sa.BigInteger(), nullable=True),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_behaviour_event")),
        schema="profile",
    )
    op.create_index(
        "ix_behaviour_event_anonymous",
        "behaviour_event",
        ["anonymous_id"],
        unique=False,
        schema="profile",
        postgresql_where=sa.text("customer_id IS NULL"),
    )
    op.create_index(
        "ix_behaviour_event_customer_occurred",
        "behaviour_event",
        ["customer_id", "occurred_at"],
        unique=False,
        schema="profile",
    )
    op.create_table(
        "customer",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("gender", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("locale", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_channel", sa.Text(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("merged_into_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["profile.customer.id"],
            name=op.f("fk_customer_merged_into_id_customer"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer")),
        sa.UniqueConstraint("external_id", name=op.f("uq_customer_external_id")),
        schema="profile",
    )
    op.create_index(
        op.f("ix_profile_customer_email"), "customer", ["email"], unique=False, schema="profile"
    )
    op.create_index(
        op.f("ix_profile_customer_merged_into_id"),
        "customer",
        ["merged_into_id"],
        unique=False,
        schema="profile",
    )
    op.create_index(
        op.f("ix_profile_customer_phone"), "customer", ["phone"], unique=False, schema="profile"
    )
    op.create_table(
        "erasure_audit",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column(
            "erased_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_audit")),
        schema="profile",
    )
    op.create_index(
        op.f("ix_profile_erasure_audit_customer_id"),
        "erasure_audit",
        ["customer_id"],
        unique=False,
        schema="profile",
    )
    op.create_table(
        "export_job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("expected_parts", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("parts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_job")),
        schema="profile",
    )
    op.create_index(
        op.f("ix_profile_export_job_customer_id"),
        "export_job",
        ["customer_id"],
        unique=False,
        schema="profile",
    )
    op.create_table(
        "consent",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["profile.customer.id"],
            name=op.f("fk_consent_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "channel", "purpose", name=op.f("pk_consent")),
        schema="profile",
    )
    op.create_table(
        "consent_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["profile.customer.id"],
            name=op.f("fk_consent_history_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_history")),
        schema="profile",
    )
    op.create_index(
        "ix_consent_history_customer_decided",
        "consent_history",
        ["customer_id", "decided_at"],
        unique=False,
        schema="profile",
    )
    op.create_table(
        "customer_identity",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column(
            "linked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["profile.customer.id"],
            name=op.f("fk_customer_identity_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_identity")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_customer_identity_kind_value")),
        schema="profile",
    )
    op.create_index(
        op.f("ix_profile_customer_identity_customer_id"),
        "customer_identity",
        ["customer_id"],
        unique=False,
        schema="profile",
    )
    op.create_table(
        "customer_tag",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["profile.customer.id"],
            name=op.f("fk_customer_tag_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "tag", "origin", name=op.f("pk_customer_tag")),
        schema="profile",
    )
    op.create_index("ix_customer_tag_tag", "customer_tag", ["tag"], unique=False, schema="profile")
    op.create_table(
        "merge",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survivor_id", sa.Uuid(), nullable=False),
        sa.Column("duplicate_id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("filled_fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("merged_by", sa.Text(), nullable=False),
        sa.Column(
            "merged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("undone_by", sa.Text(), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["duplicate_id"],
            ["profile.customer.id"],
            name=op.f("fk_merge_duplicate_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["survivor_id"],
            ["profile.customer.id"],
            name=op.f("fk_merge_survivor_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge")),
        schema="profile",
    )
    op.create_index(
        "ix_merge_open_duplicate",
        "merge",
        ["duplicate_id"],
        unique=True,
        schema="profile",
        postgresql_where=sa.text("undone_at IS NULL"),
    )
    op.create_index(
        op.f("ix_profile_merge_survivor_id"),
        "merge",
        ["survivor_id"],
        unique=False,
        schema="profile",
    )
    op.create_table(
        "order",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False),
        sa.Column("shipping_minor", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("coupon_codes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("points_redeemed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.Text(), server_default="placed", nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["profile.customer.id"],
            name=op.f("fk_order_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order")),
        sa.UniqueConstraint("external_id", name=op.f("uq_order_external_id")),
        schema="profile",
    )
    op.create_index(
        "ix_order_customer_placed",
        "order",
        ["customer_id", "placed_at"],
        unique=False,
        schema="profile",
    )
    op.create_table(
        "order_line",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("refunded_quantity", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["profile.order.id"],
            name=op.f("fk_order_line_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", "line_no", name=op.f("pk_order_line")),
        schema="profile",
    )
    op.create_table(
        "order_status_change",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["profile.order.id"],
            name=op.f("fk_order_status_change_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_status_change")),
        schema="profile",
    )
    op.create_index(
        op.f("ix_profile_order_status_change_order_id"),
        "order_status_change",
        ["order_id"],
        unique=False,
        schema="profile",
    )
    op.create_table(
        "refund",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["profile.order.id"],
            name=op.f("fk_refund_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_refund_idempotency_key")),
        schema="profile",
    )
    op.create_index(
        op.f("ix_profile_refund_order_id"), "refund", ["order_id"], unique=False, schema="profile"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_profile_refund_order_id"), table_name="refund", schema="profile")
    op.drop_table("refund", schema="profile")
    op.drop_index(
        op.f("ix_profile_order_status_change_order_id"),
        table_name="order_status_change",
        schema="profile",
    )
    op.drop_table("order_status_change", schema="profile")
    op.drop_table("order_line", schema="profile")
    op.drop_index("ix_order_customer_placed", table_name="order", schema="profile")
    op.drop_table("order", schema="profile")
    op.drop_index(op.f("ix_profile_merge_survivor_id"), table_name="merge", schema="profile")
    op.drop_index(
        "ix_merge_open_duplicate",
        table_name="merge",
        schema="profile",
        postgresql_where=sa.text("undone_at IS NULL"),
    )
    op.drop_table("merge", schema="profile")
    op.drop_index("ix_customer_tag_tag", table_name="customer_tag", schema="profile")
    op.drop_table("customer_tag", schema="profile")
    op.drop_index(
        op.f("ix_profile_customer_identity_customer_id"),
        table_name="customer_identity",
        schema="profile",
    )
    op.drop_table("customer_identity", schema="profile")
    op.drop_index(
        "ix_consent_history_customer_decided", table_name="consent_history", schema="profile"
    )
    op.drop_table("consent_history", schema="profile")
    op.drop_table("consent", schema="profile")
    op.drop_index(
        op.f("ix_profile_export_job_customer_id"), table_name="export_job", schema="profile"
    )
    op.drop_table("export_job", schema="profile")
    op.drop_index(
        op.f("ix_profile_erasure_audit_customer_id"), table_name="erasure_audit", schema="profile"
    )
    op.drop_table("erasure_audit", schema="profile")
    op.drop_index(op.f("ix_profile_customer_phone"), table_name="customer", schema="profile")
    op.drop_index(
        op.f("ix_profile_customer_merged_into_id"), table_name="customer", schema="profile"
    )
    op.drop_index(op.f("ix_profile_customer_email"), table_name="customer", schema="profile")
    op.drop_table("customer", schema="profile")
    op.drop_index(
        "ix_behaviour_event_customer_occurred", table_name="behaviour_event", schema="profile"
    )
    op.drop_index(
        "ix_behaviour_event_anonymous",
        table_name="behaviour_event",
        schema="profile",
        postgresql_where=sa.text("customer_id IS NULL"),
    )
    op.drop_table("behaviour_event", schema="profile")
