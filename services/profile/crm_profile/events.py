"""Events the profile service publishes: subjects and the producer's payload models.

Payloads name customers by ``customer_external_id`` as the shop knows them. Events and orders
keep the identity they arrived with; a consumer folds a merged duplicate into its survivor
when it receives ``crm.profile.customer.merged`` (and splits it again on ``.unmerged``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crm_common.events import EventType


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True)


class CustomerV1(_Payload):
    """Profile fields of a created or updated customer (contact details included for messaging)."""

    customer_id: str
    customer_external_id: str
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    birthday: date | None
    gender: str | None
    timezone: str | None
    locale: str | None
    country: str | None
    city: str | None
    registered_at: datetime | None
    source_channel: str | None
    attributes: dict[str, Any]
    changed_fields: list[str]


class CustomerMergedV1(_Payload):
    """``duplicate`` was folded into ``survivor``."""

    merge_id: str
    survivor_id: str
    survivor_external_id: str
    duplicate_id: str
    duplicate_external_id: str
    rule: str


class CustomerUnmergedV1(_Payload):
    """A merge was undone: ``duplicate`` is its own customer again."""

    merge_id: str
    survivor_id: str
    survivor_external_id: str
    duplicate_id: str
    duplicate_external_id: str


class CustomerErasedV1(_Payload):
    """Erase everything about these customers (a survivor and every duplicate merged into it)."""

    customer_id: str
    customer_external_id: str
    erased_external_ids: list[str]
    erased_at: datetime
    #: Internal ids of every erased customer (survivor first); lets a consumer refuse late events.
    erased_customer_ids: list[str] = Field(default_factory=list)


class ConsentChangedV1(_Payload):
    """The latest decision for one channel and purpose."""

    customer_id: str
    customer_external_id: str
    channel: str
    purpose: str
    status: Literal["granted", "denied"]
    source: str
    decided_at: datetime


class TagChangedV1(_Payload):
    """A manual tag was added to or removed from a customer."""

    customer_external_id: str
    tag: str
    change: Literal["added", "removed"]
    origin: Literal["manual"]


class InteractionV1(_Payload):
    """One accepted behaviour event (no personal data).

    Published without its null fields (``model_dump(mode="json", exclude_none=True)``): most
    events have two or three of the optional ones, and the nulls were 45% of a batch's message.
    A missing field reads as null.
    """

    event_id: str
    type: str
    customer_external_id: str | None = None
    anonymous_id: str | None = None
    occurred_at: datetime
    sku: str | None = None
    category: str | None = None
    value_minor: int | None = None
    quantity: int | None = None
    currency: str | None = None
    rating: int | None = None
    placement: str | None = None
    strategy: str | None = None
    experiment: str | None = None
    variant: str | None = None


class InteractionsRecordedV1(_Payload):
    """Behaviour events accepted together (one message per accepted batch, up to 1,000)."""

    interactions: list[InteractionV1]


class IdentityLinkedV1(_Payload):
    """An anonymous id (device, cookie) now belongs to a customer."""

    customer_external_id: str
    anonymous_id: str


class OrderLineV1(_Payload):
    """One order line."""

    sku: str
    quantity: int
    unit_price_minor: int
    category: str | None


class OrderPlacedV1(_Payload):
    """A new order."""

    order_id: str
    order_external_id: str
    customer_external_id: str
    placed_at: datetime
    currency: str
    lines: list[OrderLineV1]
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    total_minor: int
    channel: str | None
    coupon_codes: list[str]
    points_redeemed: int


class OrderStatusChangedV1(_Payload):
    """An order moved to a new status."""

    order_external_id: str
    customer_external_id: str
    status: str
    previous_status: str
    changed_at: datetime


class RefundLineV1(_Payload):
    """Units of one SKU refunded."""

    sku: str
    quantity: int


class OrderRefundedV1(_Payload):
    """Money went back to the customer; ``fully_refunded`` when nothing paid is left."""

    refund_id: str
    order_external_id: str
    customer_external_id: str
    currency: str
    amount_minor: int
    refunded_total_minor: int
    total_minor: int
    fully_refunded: bool
    lines: list[RefundLineV1]
    refunded_at: datetime


class ExportRequestedV1(_Payload):
    """Every service holding customer data contributes its part to export ``export_id``."""

    export_id: str
    customer_external_id: str
    customer_external_ids: list[str]


CUSTOMER_CREATED = EventType(
    "crm.profile.customer.created", CustomerV1, description="A customer was created"
)
CUSTOMER_UPDATED = EventType(
    "crm.profile.customer.updated", CustomerV1, description="A customer's profile changed"
)
CUSTOMER_MERGED = EventType(
    "crm.profile.customer.merged",
    CustomerMergedV1,
    description="A duplicate was merged into a survivor",
)
CUSTOMER_UNMERGED = EventType(
    "crm.profile.customer.unmerged", CustomerUnmergedV1, description="A merge was undone"
)
CUSTOMER_ERASED = EventType(
    "crm.profile.customer.erased",
    CustomerErasedV1,
    description="A customer exercised the right to erasure",
)
CONSENT_CHANGED = EventType(
    "crm.profile.consent.changed", ConsentChangedV1, description="A consent decision was recorded"
)
TAG_CHANGED = EventType(
    "crm.profile.tag.changed", TagChangedV1, description="A manual tag was added or removed"
)
INTERACTION_RECORDED = EventType(
    "crm.profile.interaction.recorded",
    InteractionsRecordedV1,
    description="Behaviour events were accepted",
)
IDENTITY_LINKED = EventType(
    "crm.profile.identity.linked",
    IdentityLinkedV1,
    description="An anonymous id was linked to a customer",
)
ORDER_PLACED = EventType(
    "crm.profile.order.placed", OrderPlacedV1, description="An order was placed"
)
ORDER_STATUS_CHANGED = EventType(
    "crm.profile.order.status_changed", OrderStatusChangedV1, description="An order changed status"
)
ORDER_REFUNDED = EventType(
    "crm.profile.order.refunded", OrderRefundedV1, description="An order was (partly) refunded"
)
EXPORT_REQUESTED = EventType(
    "crm.profile.export.requested", ExportRequestedV1, description="A GDPR export was requested"
)

#: Every event this service publishes; ``docs/events.md`` is checked against it.
PUBLISHED: list[EventType[Any]] = [
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    CUSTOMER_MERGED,
    CUSTOMER_UNMERGED,
    CUSTOMER_ERASED,
    CONSENT_CHANGED,
    TAG_CHANGED,
    INTERACTION_RECORDED,
    IDENTITY_LINKED,
    ORDER_PLACED,
    ORDER_STATUS_CHANGED,
    ORDER_REFUNDED,
    EXPORT_REQUESTED,
]
