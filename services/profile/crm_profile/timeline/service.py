"""The timeline of a customer: everything that happened to its merge group, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import InvalidCursor
from crm_common.repository import decode_cursor, encode_cursor
from crm_profile.customers.repository import CustomerRepository
from crm_profile.models import Customer
from crm_profile.timeline.repository import Position, TimelineRepository
from crm_profile.timeline.schemas import KINDS, Kind, TimelinePage


def _position(cursor: str) -> Position:
    """The position a cursor of this endpoint names; ``InvalidCursor`` otherwise."""
    at, kind, item_id = decode_cursor(cursor, 3)
    if not (isinstance(at, str) and kind in KINDS and isinstance(item_id, str)):
        raise InvalidCursor()
    try:
        when = datetime.fromisoformat(at)
    except ValueError as exc:
        raise InvalidCursor() from exc
    if when.tzinfo is None:
        raise InvalidCursor()
    return Position(when, kind, item_id)


async def timeline(
    session: AsyncSession,
    customer: Customer,
    *,
    kinds: Sequence[Kind],
    cursor: str | None,
    limit: int,
) -> TimelinePage:
    """A page of ``kinds`` items (all kinds when empty) across ``customer``'s merge group."""
    after = _position(cursor) if cursor is not None else None
    group = await CustomerRepository(session).group_ids(customer.id)
    wanted = list(dict.fromkeys(kinds)) or list(KINDS)
    rows = await TimelineRepository(session).page(group, wanted, after=after, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([last["at"], last["kind"], last["id"]])
    items = []
    for row in rows:  # the kind's summary fields sit next to at, kind, id and the customer
        summary = row.pop("data")
        items.append(row | summary)
    return TimelinePage.model_validate({"items": items, "next_cursor": next_cursor})
