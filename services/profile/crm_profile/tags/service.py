"""Tag rules: manual tags through the API, derived tags from segment, each change kept once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from crm_profile.customers.errors import CustomerNotFound
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.service import arrival
from crm_profile.events import TAG_CHANGED, TagChangedV1
from crm_profile.models import Customer, outbox
from crm_profile.tags.errors import TagNotFound
from crm_profile.tags.repository import TagRepository
from crm_profile.tags.schemas import TagItem

logger = logging.getLogger("crm.profile.tags")
MANUAL = "manual"
SEGMENT = "segment"


async def list_tags(session: AsyncSession, customer: Customer) -> list[TagItem]:
    """Manual and segment tags of ``customer``'s merge group."""
    group = await CustomerRepository(session).group_ids(customer.id)
    return [
        TagItem.model_validate(r, from_attributes=True)
        for r in await TagRepository(session).list(group)
    ]


async def _announce(
    session: AsyncSession, survivor: Customer, tag: str, change: Literal["added", "removed"]
) -> None:
    """``crm.profile.tag.changed`` for a manual tag, named by the group's survivor."""
    event = TagChangedV1(
        customer_external_id=survivor.external_id, tag=tag, change=change, origin=MANUAL
    )
    await outbox.enqueue(session, TAG_CHANGED.envelope(event, subject_id=survivor.external_id))


async def add_manual(session: AsyncSession, external_id: str, tag: str) -> tuple[TagItem, bool]:
    """Tag the customer ``external_id`` names; ``True`` when the merge group did not have it yet."""
    named, survivor = await arrival(session, external_id)
    group = await CustomerRepository(session).group_ids(survivor.id)
    repo = TagRepository(session)
    existing = await repo.find(group, tag, MANUAL)
    if existing is not None:
        return TagItem.model_validate(existing, from_attributes=True), False
    now = datetime.now(UTC)
    await repo.add(named.id, tag, MANUAL, now)
    await repo.record_change(named.id, tag, MANUAL, "added", now)
    await _announce(session, survivor, tag, "added")
    return TagItem(tag=tag, origin=MANUAL, created_at=now), True


async def remove_manual(session: AsyncSession, external_id: str, tag: str) -> None:
    """Take a manual tag off the whole merge group; 404 when no customer of it has the tag."""
    named, survivor = await arrival(session, external_id)
    group = await CustomerRepository(session).group_ids(survivor.id)
    repo = TagRepository(session)
    if not await repo.remove(group, tag, MANUAL):
        raise TagNotFound(f"customer {external_id!r} has no manual tag {tag!r}")
    await repo.record_change(named.id, tag, MANUAL, "removed", datetime.now(UTC))
    await _announce(session, survivor, tag, "removed")


async def apply_segment_change(
    session: AsyncSession,
    external_id: str,
    tag: str,
    change: Literal["added", "removed"],
    changed_at: datetime,
) -> str:
    """Mirror a derived tag from segment; the outcome (``applied``, ``stale``, ``unknown``).

    Each report is kept in the change history, which makes the latest ``changed_at`` win: a
    report older than one already kept (a redelivery overtaken by a newer one) is dropped.
    """
    try:
        named, survivor = await arrival(session, external_id)
    except CustomerNotFound:  # segment may know customers profile erased (or never had)
        logger.info("segment tag for an unknown or erased customer ignored", extra={"tag": tag})
        return "unknown"
    group = await CustomerRepository(session).group_ids(survivor.id)
    repo = TagRepository(session)
    last = await repo.last_change(group, tag, SEGMENT)
    if last is not None and changed_at < last:
        logger.info("stale segment tag change ignored", extra={"tag": tag, "change": change})
        return "stale"
    if change == "added":
        if await repo.find(group, tag, SEGMENT) is None:
            await repo.add(named.id, tag, SEGMENT, changed_at)
    else:
        await repo.remove(group, tag, SEGMENT)
    await repo.record_change(named.id, tag, SEGMENT, change, changed_at)
    return "applied"
