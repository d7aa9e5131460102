"""Request and response models of the consents API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from crm_profile.customers.schemas import PastTime

Channel = Literal["email", "sms", "push", "in_app"]
Purpose = Literal["marketing", "transactional"]
Decided = Literal["granted", "denied"]
#: ``unknown``: nobody in the merge group ever decided for this channel and purpose.
Status = Literal["granted", "denied", "unknown"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)
#: Where a decision was taken (``checkout``, ``preference_center``, ``import:crm-2019``).
Source = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: The source every decision made with the customer's own token is recorded under.
CUSTOMER_SOURCE = "customer"


class MyConsentDecision(BaseModel):
    """A decision the customer makes with their own token (its source is always ``customer``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: Decided
    purpose: Purpose = "marketing"
    decided_at: PastTime | None = Field(
        default=None, description="When the customer decided (default: now); not in the future"
    )


class ConsentDecision(MyConsentDecision):
    """A decision reported by the shop's backend."""

    source: Source


class ConsentState(BaseModel):
    """The effective decision for one channel and purpose (the latest across the merge group)."""

    channel: Channel
    purpose: Purpose
    status: Status
    source: str | None = Field(description="Where the effective decision was taken")
    decided_at: datetime | None = Field(description="When the effective decision was taken")


class ConsentList(BaseModel):
    """Every channel × purpose; ``next_cursor`` is always null (the list is 8 items long)."""

    items: list[ConsentState]
    next_cursor: str | None = None


class ConsentHistoryItem(BaseModel):
    """One recorded decision."""

    id: int
    customer_external_id: str = Field(description="The customer the decision arrived for")
    channel: Channel
    purpose: Purpose
    status: Decided
    source: str
    decided_at: datetime
    recorded_at: datetime


class ConsentHistoryPage(BaseModel):
    """Decisions, most recently decided first."""

    items: list[ConsentHistoryItem]
    next_cursor: str | None
