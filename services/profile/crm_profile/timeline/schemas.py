"""Response models of the timeline: one item model per kind, told apart by ``kind``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, Field

Kind = Literal[
    "event", "order", "order_status", "refund", "consent", "tag", "merge", "unmerge", "message"
]
KINDS: tuple[Kind, ...] = get_args(Kind)


class _Item(BaseModel):
    """What every item has: when, what kind, its id within the kind, and whose it is."""

    at: datetime
    kind: Kind
    id: str
    customer_external_id: str = Field(
        description="The customer of the merge group the item arrived for (the survivor for merges)"
    )


class EventItem(_Item):
    """A behaviour event (``at`` = when it occurred; ``id`` = the sender's event id)."""

    kind: Literal["event"]
    type: str
    sku: str | None
    category: str | None
    value_minor: int | None


class OrderItem(_Item):
    """An order was placed (``at`` = placed_at; ``status`` is its current status)."""

    kind: Literal["order"]
    order_external_id: str
    status: str
    currency: str
    total_minor: int
    channel: str | None


class OrderStatusItem(_Item):
    """An order moved to a new status."""

    kind: Literal["order_status"]
    order_external_id: str
    status: str


class RefundItem(_Item):
    """Money went back for an order."""

    kind: Literal["refund"]
    order_external_id: str
    currency: str
    amount_minor: int


class ConsentItem(_Item):
    """A consent decision (``at`` = when the customer decided), whether it won or not."""

    kind: Literal["consent"]
    channel: str
    purpose: str
    status: str
    source: str


class TagItem(_Item):
    """A tag was added or removed (manual, or reported by segment)."""

    kind: Literal["tag"]
    tag: str
    origin: str
    change: str


class MergeItem(_Item):
    """A duplicate was merged into the survivor (``id`` = the merge's id)."""

    kind: Literal["merge"]
    survivor_external_id: str
    duplicate_external_id: str
    rule: str


class UnmergeItem(_Item):
    """A merge was undone (``id`` = the merge's id)."""

    kind: Literal["unmerge"]
    survivor_external_id: str
    duplicate_external_id: str
    rule: str


class MessageItem(_Item):
    """A message sent to the customer.

    Reserved: notify does not publish message events yet; items of this kind appear once it
    does and profile keeps their projection. Until then none are returned.
    """

    kind: Literal["message"]
    channel: str
    status: str
    template: str | None


TimelineItem = Annotated[
    EventItem
    | OrderItem
    | OrderStatusItem
    | RefundItem
    | ConsentItem
    | TagItem
    | MergeItem
    | UnmergeItem
    | MessageItem,
    Field(discriminator="kind"),
]


class TimelinePage(BaseModel):
    """A page of the timeline, newest first."""

    items: list[TimelineItem]
    next_cursor: str | None
