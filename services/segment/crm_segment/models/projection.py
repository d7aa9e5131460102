"""Projections of other services' facts that segmentation reads: orders, behaviour, consents,
tags, loyalty and the catalogue. Fed only by events (never by reading another schema).

Every row keyed by a customer carries both ``customer_external_id`` (the customer the fact
arrived with, never changed, so a merge can be undone) and ``root_external_id`` (the customer
it counts for today: the survivor of the merge chain). ``crm_segment.projections.reroot``
is the one place that rewrites ``root_external_id``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    SmallInteger,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from crm_segment.database import Base


class Order(Base):
    """One profile order with its current status and refunds (``crm.profile.order.*``)."""

    __tablename__ = "order"
    __table_args__ = (
        Index("ix_order_root_placed", "root_external_id", "placed_at"),
        Index("ix_order_customer", "customer_external_id"),
        Index("ix_order_placed", "placed_at"),
    )

    order_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    customer_external_id: Mapped[str] = mapped_column(Text)
    root_external_id: Mapped[str] = mapped_column(Text)
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    currency: Mapped[str] = mapped_column(Text)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    discount_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    shipping_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    fully_refunded: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    #: ``placed``, ``paid``, ``shipped``, ``delivered`` or ``cancelled``.
    status: Mapped[str] = mapped_column(Text, default="placed", server_default="placed")
    channel: Mapped[str | None] = mapped_column(Text)
    coupon_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    points_redeemed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: ``ce-time`` of the last status event applied (late, older ones are ignored).
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    projected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class OrderLine(Base):
    """One line of an order: what was bought, in which category, at what price."""

    __tablename__ = "order_line"
    __table_args__ = (Index("ix_order_line_sku", "sku"),)

    order_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    line_no: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    sku: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)


class InteractionDaily(Base):
    """Behaviour aggregates: how many interactions of a type, category and SKU a customer had
    on a day (UTC), from ``crm.profile.interaction.recorded``. Empty string = no category/SKU."""

    __tablename__ = "interaction_daily"
    __table_args__ = (Index("ix_interaction_daily_root_day", "root_external_id", "day"),)

    customer_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    type: Mapped[str] = mapped_column(Text, primary_key=True)
    category: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    sku: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    root_external_id: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer)
    #: Sum of the interactions' ``value_minor`` (e.g. cart value), 0 when they carry none.
    value_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: Latest ``occurred_at`` that day: a time-relative rule's window ends exactly there.
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerConsent(Base):
    """The latest consent decision per channel and purpose (``crm.profile.consent.changed``)."""

    __tablename__ = "customer_consent"
    __table_args__ = (Index("ix_customer_consent_root", "root_external_id"),)

    customer_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    channel: Mapped[str] = mapped_column(Text, primary_key=True)
    purpose: Mapped[str] = mapped_column(Text, primary_key=True)
    root_external_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerTag(Base):
    """A tag on a customer: ``manual`` (from profile) or ``segment`` (from a tag rule here)."""

    __tablename__ = "customer_tag"
    __table_args__ = (
        Index("ix_customer_tag_root", "root_external_id"),
        Index("ix_customer_tag_tag", "tag"),
    )

    customer_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    origin: Mapped[str] = mapped_column(Text, primary_key=True)
    root_external_id: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerLoyalty(Base):
    """Loyalty tier and paid membership (``crm.loyalty.tier.changed`` / ``.membership.changed``)."""

    __tablename__ = "customer_loyalty"
    __table_args__ = (Index("ix_customer_loyalty_root", "root_external_id"),)

    customer_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    root_external_id: Mapped[str] = mapped_column(Text)
    tier: Mapped[str | None] = mapped_column(Text)
    tier_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: ``active``, ``cancelled`` or ``expired``; null = never a paying member.
    membership_status: Mapped[str | None] = mapped_column(Text)
    membership_plan: Mapped[str | None] = mapped_column(Text)
    membership_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    membership_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Item(Base):
    """A catalogue item as segmentation needs it (``crm.recommend.item.changed``)."""

    __tablename__ = "item"

    sku: Mapped[str] = mapped_column(Text, primary_key=True)
    category: Mapped[str | None] = mapped_column(Text)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: ``ce-time`` of the event applied last.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
