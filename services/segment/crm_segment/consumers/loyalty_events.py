"""Loyalty's tier and paid-membership events → ``customer_loyalty``.

Loyalty declares both events ahead of publishing them; these consumers are built and tested
against that contract. Tier and membership are separate durables writing separate columns, and
each kind is ordered by its payload's ``changed_at``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription
from crm_segment.projections import service


class TierChanged(BaseModel):
    """``crm.loyalty.tier.changed``."""

    customer_external_id: str
    tier: str
    changed_at: datetime


class MembershipChanged(BaseModel):
    """``crm.loyalty.membership.changed``."""

    customer_external_id: str
    plan: str
    status: str
    expires_at: datetime | None = None
    changed_at: datetime


async def on_tier_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Take the customer's new tier unless a later tier change was applied."""
    event = TierChanged.model_validate(envelope.data)
    await service.change_tier(
        session, event.customer_external_id, event.tier, event.changed_at, sent_at=envelope.time
    )


async def on_membership_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Take the customer's membership unless a later membership change was applied."""
    event = MembershipChanged.model_validate(envelope.data)
    await service.change_membership(
        session,
        event.customer_external_id,
        event.plan,
        event.status,
        event.expires_at,
        event.changed_at,
        sent_at=envelope.time,
    )


TIERS = Subscription(
    subject="crm.loyalty.tier.changed",
    durable="segment-loyalty-tiers",
    handler=on_tier_changed,
    batch_transaction=True,
)
MEMBERSHIPS = Subscription(
    subject="crm.loyalty.membership.changed",
    durable="segment-loyalty-memberships",
    handler=on_membership_changed,
    batch_transaction=True,
)
