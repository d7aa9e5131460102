"""Segments (rule, built-in and tag rules), their materialised members, and the queue of
customers waiting for re-evaluation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, Text, Uuid, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_segment.database import Base


class Segment(Base):
    """A named rule whose members are kept materialised.

    ``kind`` is ``rule`` (defined by a marketer), ``rfm`` / ``lifecycle`` / ``cluster``
    (built in, ``key`` names the group, stage or cluster) or ``tag`` (a tag rule: ``tag`` is
    set on members and removed from those who leave).
    """

    __tablename__ = "segment"
    __table_args__ = (
        Index("uq_segment_name", "name", unique=True, postgresql_where=text("deleted_at IS NULL")),
        Index(
            "uq_segment_kind_key",
            "kind",
            "key",
            unique=True,
            postgresql_where=text("key IS NOT NULL AND deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    kind: Mapped[str] = mapped_column(Text, default="rule", server_default="rule")
    key: Mapped[str | None] = mapped_column(Text)
    tag: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    #: Bumped on every rule change; members are re-evaluated in full when it changes.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: Version whose members are materialised (lags ``version`` while a refresh is pending).
    evaluated_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    members_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    evaluated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SegmentMember(Base):
    """A customer (root) currently in a segment."""

    __tablename__ = "segment_member"
    __table_args__ = (Index("ix_segment_member_customer", "customer_external_id"),)

    segment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("segment.id", ondelete="CASCADE"), primary_key=True
    )
    customer_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EvaluationQueue(Base):
    """Customers whose scores and memberships must be re-evaluated at ``due_at``.

    Projections enqueue a customer with ``due_at = now()`` when one of its inputs changed; the
    evaluator enqueues it again for the next moment a time-relative condition can change.
    One row per customer: the earliest due time wins.
    """

    __tablename__ = "evaluation_queue"
    __table_args__ = (Index("ix_evaluation_queue_due", "due_at"),)

    customer_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Why: ``input`` (a projection changed), ``scheduled`` (a time window moves), ``merge``.
    reason: Mapped[str] = mapped_column(Text, default="input", server_default="input")
    enqueued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
