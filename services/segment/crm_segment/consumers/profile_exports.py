"""Profile's GDPR export requests → segment's part (``crm.segment.export.contributed``)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription
from crm_segment.customers import service


class ExportRequested(BaseModel):
    """``crm.profile.export.requested``: whom the export is about."""

    export_id: str
    customer_external_id: str
    customer_external_ids: list[str]


async def on_export_requested(session: AsyncSession, envelope: Envelope) -> None:
    """Contribute everything segment holds about the customer and its merged duplicates."""
    event = ExportRequested.model_validate(envelope.data)
    external_ids = sorted({event.customer_external_id, *event.customer_external_ids})
    await service.contribute_export(
        session, event.export_id, event.customer_external_id, external_ids
    )


SUBSCRIPTION = Subscription(
    subject="crm.profile.export.requested",
    durable="segment-profile-exports",
    handler=on_export_requested,
)
