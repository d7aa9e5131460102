"""Segment's projection of profile's customers: only what segmentation needs.

No contact details (email, phone) and no names: segments are built from where a customer
lives, their language, how they came and when; birthdays only to the month.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, SmallInteger, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_segment.database import Base


class Customer(Base):
    """One profile customer as segment knows it, fed by ``crm.profile.customer.*``.

    ``updated_at`` is the time (``ce-time``) of the profile event whose fields the row holds,
    so an older event delivered late never overwrites a newer one; ``status_changed_at`` is the
    same for merges. A merged duplicate keeps its row with ``status='merged'``.
    """

    __tablename__ = "customer"

    customer_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(Text, default="active", server_default="active")
    merged_into_external_id: Mapped[str | None] = mapped_column(Text, index=True)
    #: The customer this one counts for today: itself, or the survivor at the end of its merge
    #: chain. Maintained by ``crm_segment.projections.reroot`` with every projection's copy.
    root_external_id: Mapped[str] = mapped_column(Text, index=True)
    country: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    locale: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(Text)
    birthday_month: Mapped[int | None] = mapped_column(SmallInteger)
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_channel: Mapped[str | None] = mapped_column(Text)
    #: The shop's free attributes of the customer (rules may test ``attributes.<key>``).
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    #: ``ce-time`` of the created/updated event applied last; null for a row known only by a merge.
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    projected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ErasedCustomer(Base):
    """A profile customer that was erased: its internal id only, so late events are refused."""

    __tablename__ = "erased_customer"

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
