"""Events the recommend service publishes (its payload models and subjects).

``crm.recommend.item.changed`` is declared ahead of the catalogue that will publish it, so
that its consumers (segment today) are built and tested against the contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from crm_common.events import EventType


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True)


class ItemChangedV1(_Payload):
    """A catalogue item was created or changed."""

    sku: str
    category: str | None
    launched_at: datetime | None
    active: bool


ITEM_CHANGED = EventType(
    "crm.recommend.item.changed",
    ItemChangedV1,
    description="A catalogue item was created or changed",
)

#: Every event this service publishes; ``docs/events.md`` is checked against it.
PUBLISHED: list[EventType[Any]] = [ITEM_CHANGED]
