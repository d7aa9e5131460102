"""Tombstones of erased external ids, so that late events keyed by them are refused.

Segment's projections of orders, behaviour, consents, tags and loyalty are keyed by the shop's
external customer id, while ``erased_customer`` remembers erased customers only by profile's
internal UUID (which those events do not carry). This table remembers the external ids too,
but only as SHA-256 digests: it holds nothing readable about the erased customer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from crm_segment.database import Base


class ErasedExternalId(Base):
    """An erased external customer id, as ``sha256(utf-8 bytes of the id)``, and when."""

    __tablename__ = "erased_external_id"

    digest: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    #: Events about this id whose ``ce-time`` is not after this moment are skipped.
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
