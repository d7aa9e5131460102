"""Projections (orders, behaviour, consents, tags, loyalty, catalogue), scores, jobs, model
fits, clusters, segments, members and the re-evaluation queue.

Revision ID: segment_0003
Revises: segment_0002
Create Date: 2026-11-30 02:48:36.603978+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "segment_0003"
down_revision: str | None = "segment_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "cluster",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("index", sa.SmallInteger(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("description", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster")),
        schema="segment",
    )
    op.create_index(
        op.f("ix_segment_cluster_run_id"), "cluster", ["run_id"], unique=False, schema="segment"
    )
    op.create_table(
        "customer_consent",
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("root_external_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_external_id", "channel", "purpose", name=op.f("pk_customer_consent")
        ),
        schema="segment",
    )
    op.create_index(
        "ix_customer_consent_root",
        "customer_consent",
        ["root_external_id"],
        unique=False,
        schema="segment",
    )
    op.create_table(
        "customer_loyalty",
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("root_external_id", sa.Text(), nullable=False),
        sa.Column("tier", sa.Text(), nullable=True),
        sa.Column("tier_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("membership_status", sa.Text(), nullable=True),
        sa.Column("membership_plan", sa.Text(), nullable=True),
        sa.Column("membership_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("membership_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_external_id", name=op.f("pk_customer_loyalty")),
        schema="segment",
    )
    op.create_index(
        "ix_customer_loyalty_root",
        "customer_loyalty",
        ["root_external_id"],
        unique=False,
        schema="segment",
    )
    op.create_table(
        "customer_score",
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("orders_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("revenue_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rfm_as_of", sa.Date(), nullable=True),
        sa.Column("recency_days", sa.Integer(), nullable=True),
        sa.Column("frequency", sa.Integer(), nullable=True),
        sa.Column("monetary_minor", sa.BigInteger(), nullable=True),
        sa.Column("r", sa.SmallInteger(), nullable=True),
        sa.Column("f", sa.SmallInteger(), nullable=True),
        sa.Column("m", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_score", sa.Text(), nullable=True),
        sa.Column("rfm_group", sa.Text(), nullable=True),
        sa.Column("lifecycle", sa.Text(), nullable=True),
        sa.Column("lifecycle_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("p_alive", sa.Double(), nullable=True),
        sa.Column("churn_probability", sa.Double(), nullable=True),
        sa.Column("expected_purchases_90d", sa.Double(), nullable=True),
        sa.Column("clv_12m_minor", sa.BigInteger(), nullable=True),
        sa.Column("value_score", sa.SmallInteger(), nullable=True),
        sa.Column("cluster_id", sa.Uuid(), nullable=True),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("customer_external_id", name=op.f("pk_customer_score")),
        schema="segment",
    )
    op.create_index(
        "ix_customer_score_cluster",
        "customer_score",
        ["cluster_id"],
        unique=False,
        schema="segment",
    )
    op.create_index(
        "ix_customer_score_group", "customer_score", ["rfm_group"], unique=False, schema="segment"
    )
    op.create_index(
        "ix_customer_score_lifecycle",
        "customer_score",
        ["lifecycle"],
        unique=False,
        schema="segment",
    )
    op.create_table(
        "customer_tag",
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("root_external_id", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_external_id", "tag", "origin", name=op.f("pk_customer_tag")
        ),
        schema="segment",
    )
    op.create_index(
        "ix_customer_tag_root", "customer_tag", ["root_external_id"], unique=False, schema="segment"
    )
    op.create_index("ix_customer_tag_tag", "customer_tag", ["tag"], unique=False, schema="segment")
    op.create_table(
        "evaluation_queue",
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), server_default="input", nullable=False),
        sa.Column(
            "enqueued_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("customer_external_id", name=op.f("pk_evaluation_queue")),
        schema="segment",
    )
    op.create_index(
        "ix_evaluation_queue_due", "evaluation_queue", ["due_at"], unique=False, schema="segment"
    )
    op.create_table(
        "interaction_daily",
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), server_default="", nullable=False),
        sa.Column("sku", sa.Text(), server_default="", nullable=False),
        sa.Column("root_external_id", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("value_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_external_id",
            "day",
            "type",
            "category",
            "sku",
            name=op.f("pk_interaction_daily"),
        ),
        schema="segment",
    )
    op.create_index(
        "ix_interaction_daily_root_day",
        "interaction_daily",
        ["root_external_id", "day"],
        unique=False,
        schema="segment",
    )
    op.create_table(
        "item",
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_item")),
        schema="segment",
    )
    op.create_table(
        "job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column(
            "params", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        schema="segment",
    )
    op.create_index(
        "ix_job_kind_created", "job", ["kind", "created_at"], unique=False, schema="segment"
    )
    op.create_table(
        "model_fit",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("diagnostics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column(
            "fitted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_fit")),
        schema="segment",
    )
    op.create_index(
        "ix_model_fit_kind_fitted",
        "model_fit",
        ["kind", "fitted_at"],
        unique=False,
        schema="segment",
    )
    op.create_table(
        "order",
        sa.Column("order_external_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column("root_external_id", sa.Text(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("shipping_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("fully_refunded", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("status", sa.Text(), server_default="placed", nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("coupon_codes", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("points_redeemed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "projected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("order_external_id", name=op.f("pk_order")),
        schema="segment",
    )
    op.create_index(
        "ix_order_customer", "order", ["customer_external_id"], unique=False, schema="segment"
    )
    op.create_index("ix_order_placed", "order", ["placed_at"], unique=False, schema="segment")
    op.create_index(
        "ix_order_root_placed",
        "order",
        ["root_external_id", "placed_at"],
        unique=False,
        schema="segment",
    )
    op.create_table(
        "order_line",
        sa.Column("order_external_id", sa.Text(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("order_external_id", "line_no", name=op.f("pk_order_line")),
        schema="segment",
    )
    op.create_index("ix_order_line_sku", "order_line", ["sku"], unique=False, schema="segment")
    op.create_table(
        "rfm_boundaries",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("boundaries", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rfm_boundaries")),
        schema="segment",
    )
    op.create_table(
        "segment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("kind", sa.Text(), server_default="rule", nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("tag", sa.Text(), nullable=True),
        sa.Column("rule", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("evaluated_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("members_count", sa.Integer(), server_default="0", nullable=False),
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
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment")),
        schema="segment",
    )
    op.create_index(
        "uq_segment_kind_key",
        "segment",
        ["kind", "key"],
        unique=True,
        schema="segment",
        postgresql_where=sa.text("key IS NOT NULL AND deleted_at IS NULL"),
    )
    op.create_index(
        "uq_segment_name",
        "segment",
        ["name"],
        unique=True,
        schema="segment",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "segment_member",
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("customer_external_id", sa.Text(), nullable=False),
        sa.Column(
            "entered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segment.segment.id"],
            name=op.f("fk_segment_member_segment_id_segment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "segment_id", "customer_external_id", name=op.f("pk_segment_member")
        ),
        schema="segment",
    )
    op.create_index(
        "ix_segment_member_customer",
        "segment_member",
        ["customer_external_id"],
        unique=False,
        schema="segment",
    )
    op.add_column(
        "customer", sa.Column("root_external_id", sa.Text(), nullable=True), schema="segment"
    )
    op.execute(
        "UPDATE segment.customer SET root_external_id = coalesce("
        "merged_into_external_id, customer_external_id)"
    )
    op.alter_column("customer", "root_external_id", nullable=False, schema="segment")
    op.create_index(
        op.f("ix_segment_customer_root_external_id"),
        "customer",
        ["root_external_id"],
        unique=False,
        schema="segment",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(
        op.f("ix_segment_customer_root_external_id"), table_name="customer", schema="segment"
    )
    op.drop_column("customer", "root_external_id", schema="segment")
    op.drop_index("ix_segment_member_customer", table_name="segment_member", schema="segment")
    op.drop_table("segment_member", schema="segment")
    op.drop_index(
        "uq_segment_name",
        table_name="segment",
        schema="segment",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "uq_segment_kind_key",
        table_name="segment",
        schema="segment",
        postgresql_where=sa.text("key IS NOT NULL AND deleted_at IS NULL"),
    )
    op.drop_table("segment", schema="segment")
    op.drop_table("rfm_boundaries", schema="segment")
    op.drop_index("ix_order_line_sku", table_name="order_line", schema="segment")
    op.drop_table("order_line", schema="segment")
    op.drop_index("ix_order_root_placed", table_name="order", schema="segment")
    op.drop_index("ix_order_placed", table_name="order", schema="segment")
    op.drop_index("ix_order_customer", table_name="order", schema="segment")
    op.drop_table("order", schema="segment")
    op.drop_index("ix_model_fit_kind_fitted", table_name="model_fit", schema="segment")
    op.drop_table("model_fit", schema="segment")
    op.drop_index("ix_job_kind_created", table_name="job", schema="segment")
    op.drop_table("job", schema="segment")
    op.drop_table("item", schema="segment")
    op.drop_index("ix_interaction_daily_root_day", table_name="interaction_daily", schema="segment")
    op.drop_table("interaction_daily", schema="segment")
    op.drop_index("ix_evaluation_queue_due", table_name="evaluation_queue", schema="segment")
    op.drop_table("evaluation_queue", schema="segment")
    op.drop_index("ix_customer_tag_tag", table_name="customer_tag", schema="segment")
    op.drop_index("ix_customer_tag_root", table_name="customer_tag", schema="segment")
    op.drop_table("customer_tag", schema="segment")
    op.drop_index("ix_customer_score_lifecycle", table_name="customer_score", schema="segment")
    op.drop_index("ix_customer_score_group", table_name="customer_score", schema="segment")
    op.drop_index("ix_customer_score_cluster", table_name="customer_score", schema="segment")
    op.drop_table("customer_score", schema="segment")
    op.drop_index("ix_customer_loyalty_root", table_name="customer_loyalty", schema="segment")
    op.drop_table("customer_loyalty", schema="segment")
    op.drop_index("ix_customer_consent_root", table_name="customer_consent", schema="segment")
    op.drop_table("customer_consent", schema="segment")
    op.drop_index(op.f("ix_segment_cluster_run_id"), table_name="cluster", schema="segment")
    op.drop_table("cluster", schema="segment")
