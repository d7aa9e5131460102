"""Customer, its linked identities, and the merge audit."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_profile.database import Base


class Customer(Base):
    """One shopper, addressed by the shop's ``external_id``.

    A merged duplicate keeps its row (``status='merged'``, ``merged_into_id`` set) so the merge
    can be undone; events and orders always keep the customer they arrived for, and reads of a
    survivor take in every customer merged into it.
    """

    __tablename__ = "customer"
    # ``id`` and ``status`` ride in the unique index: the intake's look-up of up to 1,000
    # external ids (live ones only) is then an index-only scan (bench/README.md).
    __table_args__ = (UniqueConstraint("external_id", postgresql_include=["id", "status"]),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    external_id: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text, index=True)
    phone: Mapped[str | None] = mapped_column(Text, index=True)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    birthday: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(Text)
    locale: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_channel: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    status: Mapped[str] = mapped_column(Text, default="active", server_default="active")
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customer.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerIdentity(Base):
    """A device or cookie id (``anonymous_id``) linked to a customer by ``POST /v1/identify``."""

    __tablename__ = "customer_identity"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Merge(Base):
    """Audit of one merge, and what undoing it needs (the survivor's fields it overwrote)."""

    __tablename__ = "merge"
    __table_args__ = (
        Index(
            "ix_merge_open_duplicate",
            "duplicate_id",
            unique=True,
            postgresql_where=text("undone_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    survivor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    duplicate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    filled_fields: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    merged_by: Mapped[str] = mapped_column(Text)
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    undone_by: Mapped[str | None] = mapped_column(Text)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
