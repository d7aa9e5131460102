"""Behaviour events (page views, cart changes, reviews, ...) as they arrived."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Text, Uuid, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_profile.database import Base


class BehaviourEvent(Base):
    """One accepted behaviour event; ``event_id`` is the sender's and makes retries harmless.

    ``customer_id`` is the customer the event arrived for (or, for an anonymous event, the one
    its ``anonymous_id`` was later linked to); it never changes on a merge.
    """

    __tablename__ = "behaviour_event"
    __table_args__ = (
        Index("ix_behaviour_event_customer_occurred", "customer_id", "occurred_at"),
        Index(
            "ix_behaviour_event_anonymous",
            "anonymous_id",
            postgresql_where=text("customer_id IS NULL"),
        ),
    )

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    customer_external_id: Mapped[str | None] = mapped_column(Text)
    anonymous_id: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    sku: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    value_minor: Mapped[int | None] = mapped_column(BigInteger)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB)
