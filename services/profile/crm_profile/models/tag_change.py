"""When each tag was added to or removed from a customer (the timeline and stale-event guard)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_profile.database import Base


class CustomerTagChange(Base):
    """One addition or removal of a tag; ``changed_at`` is when it happened at its origin."""

    __tablename__ = "customer_tag_change"
    __table_args__ = (
        Index("ix_customer_tag_change_customer_changed", "customer_id", "changed_at"),
        Index("ix_customer_tag_change_customer_tag", "customer_id", "tag", "origin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(Text)
    change: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
