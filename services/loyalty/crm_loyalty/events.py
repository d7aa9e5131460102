"""Events the loyalty service publishes (its payload models and subjects).

The tier and membership events are declared ahead of the ledger that will publish them, so
that their consumers (segment today) are built and tested against the contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from crm_common.events import EventType


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True)


class TierChangedV1(_Payload):
    """A customer moved to another loyalty tier (or got their first one)."""

    customer_external_id: str
    tier: str
    previous_tier: str | None
    changed_at: datetime


class MembershipChangedV1(_Payload):
    """A customer's paid membership started, renewed, was cancelled or expired."""

    customer_external_id: str
    plan: str
    status: Literal["active", "cancelled", "expired"]
    expires_at: datetime | None
    changed_at: datetime


TIER_CHANGED = EventType(
    "crm.loyalty.tier.changed", TierChangedV1, description="A customer's loyalty tier changed"
)
MEMBERSHIP_CHANGED = EventType(
    "crm.loyalty.membership.changed",
    MembershipChangedV1,
    description="A customer's paid membership changed",
)

#: Every event this service publishes; ``docs/events.md`` is checked against it.
PUBLISHED: list[EventType[Any]] = [TIER_CHANGED, MEMBERSHIP_CHANGED]
