"""Profile's consent decisions (``crm.profile.consent.changed``) → ``customer_consent``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription
from crm_segment.projections import service


class ConsentChanged(BaseModel):
    """``crm.profile.consent.changed``: the latest decision for a channel and purpose."""

    customer_external_id: str
    channel: str
    purpose: str
    status: str
    decided_at: datetime


async def on_consent_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Keep the decision unless a later one (by ``decided_at``) is held."""
    event = ConsentChanged.model_validate(envelope.data)
    await service.change_consent(
        session,
        event.customer_external_id,
        event.channel,
        event.purpose,
        event.status,
        event.decided_at,
        sent_at=envelope.time,
    )


SUBSCRIPTION = Subscription(
    subject="crm.profile.consent.changed",
    durable="segment-profile-consents",
    handler=on_consent_changed,
    batch_transaction=True,
)
