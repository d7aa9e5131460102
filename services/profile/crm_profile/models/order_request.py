"""``Idempotency-Key`` of ``POST /v1/orders`` requests: which order a key created or returned."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from crm_profile.database import Base


class OrderRequestKey(Base):
    """A key seen once; a later request with the key must carry the same body (``content_hash``)."""

    __tablename__ = "order_request_key"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("order.id", ondelete="CASCADE"), index=True
    )
    content_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
