"""Profile's customer events (``crm.profile.customer.>``) → segment's customer projection.

The models below are segment's own narrow view of profile's payloads: only the fields it
reads, everything else ignored, and no contact details at all.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription, by_subject
from crm_segment.customers import service

SUBJECT = "crm.profile.customer.>"


class ProfileCustomer(BaseModel):
    """``crm.profile.customer.created`` / ``.updated``: the fields segmentation uses."""

    customer_id: uuid.UUID
    customer_external_id: str
    country: str | None = None
    city: str | None = None
    locale: str | None = None
    timezone: str | None = None
    gender: str | None = None
    birthday: date | None = None
    registered_at: datetime | None = None
    source_channel: str | None = None
    attributes: dict[str, Any] = {}


class ProfileMerge(BaseModel):
    """``crm.profile.customer.merged`` / ``.unmerged``."""

    survivor_id: uuid.UUID
    survivor_external_id: str
    duplicate_id: uuid.UUID
    duplicate_external_id: str


class ProfileErasure(BaseModel):
    """``crm.profile.customer.erased``."""

    customer_id: uuid.UUID
    erased_external_ids: list[str]
    erased_customer_ids: list[uuid.UUID] = []
    erased_at: datetime


async def on_customer_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Created or updated: upsert the row unless it already holds newer fields, then queue the
    customer's root for re-evaluation (attributes, country, birthday month feed rules)."""
    event = ProfileCustomer.model_validate(envelope.data)
    values = event.model_dump(exclude={"customer_id", "customer_external_id", "birthday"})
    values["birthday_month"] = event.birthday.month if event.birthday else None
    await service.project(
        session, event.customer_external_id, event.customer_id, values, envelope.time
    )


async def on_customer_merged(session: AsyncSession, envelope: Envelope) -> None:
    """The duplicate is marked merged into the survivor."""
    event = ProfileMerge.model_validate(envelope.data)
    await service.merged(
        session,
        event.duplicate_external_id,
        event.duplicate_id,
        event.survivor_external_id,
        event.survivor_id,
        envelope.time,
    )


async def on_customer_unmerged(session: AsyncSession, envelope: Envelope) -> None:
    """The duplicate is active on its own again."""
    event = ProfileMerge.model_validate(envelope.data)
    await service.unmerged(session, event.duplicate_external_id, event.duplicate_id, envelope.time)


async def on_customer_erased(session: AsyncSession, envelope: Envelope) -> None:
    """Every row about every erased external id goes."""
    event = ProfileErasure.model_validate(envelope.data)
    await service.erase(
        session,
        event.erased_external_ids,
        [event.customer_id, *event.erased_customer_ids],
        event.erased_at,
    )


HANDLERS = {
    "crm.profile.customer.created": on_customer_changed,
    "crm.profile.customer.updated": on_customer_changed,
    "crm.profile.customer.merged": on_customer_merged,
    "crm.profile.customer.unmerged": on_customer_unmerged,
    "crm.profile.customer.erased": on_customer_erased,
}


#: An customer event segment has no use for is acked and skipped.
on_profile_customer = by_subject(HANDLERS)


SUBSCRIPTION = Subscription(
    subject=SUBJECT,
    durable="segment-profile-customers",
    handler=on_profile_customer,
    batch_transaction=True,
)
