"""Helpers of the projection tests: customers with a row in every projection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_loyalty.events import TIER_CHANGED
from crm_profile.events import (
    CONSENT_CHANGED,
    CUSTOMER_CREATED,
    CUSTOMER_MERGED,
    CUSTOMER_UNMERGED,
    INTERACTION_RECORDED,
    ORDER_PLACED,
    TAG_CHANGED,
)
from crm_segment.consumers.loyalty_events import on_tier_changed
from crm_segment.consumers.profile_consents import on_consent_changed
from crm_segment.consumers.profile_customers import on_profile_customer
from crm_segment.consumers.profile_interactions import on_interactions_recorded
from crm_segment.consumers.profile_orders import on_profile_order
from crm_segment.consumers.profile_tags import on_tag_changed
from crm_segment.models import CustomerScore, Segment, SegmentMember
from crm_segment.projections.reroot import ROOTED
from tests.segment.conftest import at, envelope
from tests.segment.consumers.samples import batch, consent, interaction, placed, tag, tier
from tests.segment.consumers.test_profile_customers import customer, merged, unmerged

Person = tuple[str, uuid.UUID]
D = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


def person(external_id: str) -> Person:
    """An external id with a fresh internal id."""
    return external_id, uuid.uuid4()


async def with_data(session: AsyncSession, who: Person, known: bool = True) -> None:
    """A row for ``who`` in every projection (and the customer row itself when ``known``)."""
    external_id = who[0]
    if known:
        await on_profile_customer(session, envelope(CUSTOMER_CREATED, customer(*who), at(0)))
    order = placed(f"{external_id}-o1", external_id, ("SKU-1", 1, 1000, "shoes"))
    await on_profile_order(session, envelope(ORDER_PLACED, order, at(1)))
    interactions = batch(interaction(external_id, "product_view", D, "SKU-1", "shoes"))
    await on_interactions_recorded(session, envelope(INTERACTION_RECORDED, interactions, at(1)))
    await on_consent_changed(
        session, envelope(CONSENT_CHANGED, consent(external_id, "granted", at(1)), at(1))
    )
    await on_tag_changed(session, envelope(TAG_CHANGED, tag(external_id, "vip", "added"), at(1)))
    await on_tier_changed(session, envelope(TIER_CHANGED, tier(external_id, "gold", at(1)), at(1)))


async def merge(session: AsyncSession, survivor: Person, duplicate: Person, minute: int) -> None:
    """Profile's merge of ``duplicate`` into ``survivor`` at ``minute``."""
    event = envelope(CUSTOMER_MERGED, merged(survivor, duplicate), at(minute))
    await on_profile_customer(session, event)


async def unmerge(session: AsyncSession, survivor: Person, duplicate: Person, minute: int) -> None:
    """Profile's undo of that merge at ``minute``."""
    event = envelope(CUSTOMER_UNMERGED, unmerged(survivor, duplicate), at(minute))
    await on_profile_customer(session, event)


async def roots(session: AsyncSession, *external_ids: str) -> dict[str, dict[str, str]]:
    """``table -> {customer_external_id: root_external_id}`` over every rooted table."""
    found: dict[str, dict[str, str]] = {}
    for table in ROOTED:
        rows = await session.execute(
            select(table.c.customer_external_id, table.c.root_external_id).where(
                table.c.customer_external_id.in_(external_ids)
            )
        )
        found[table.name] = {r.customer_external_id: r.root_external_id for r in rows}
    return found


def everywhere(mapping: dict[str, str], without_customer: set[str] | None = None) -> dict[str, Any]:
    """The :func:`roots` expected when every table holds ``mapping``."""
    expected = {table.name: dict(mapping) for table in ROOTED}
    for external_id in without_customer or set():
        expected["customer"].pop(external_id)
    return expected


async def scored(session: AsyncSession, *external_ids: str) -> None:
    """A score row for each customer."""
    for external_id in external_ids:
        await session.execute(insert(CustomerScore).values(customer_external_id=external_id))


async def segment_with(session: AsyncSession, name: str, *external_ids: str) -> uuid.UUID:
    """A rule segment whose members are ``external_ids``."""
    segment_id = uuid.uuid4()
    await session.execute(
        insert(Segment).values(
            id=segment_id, name=name, rule={"all": []}, members_count=len(external_ids)
        )
    )
    for external_id in external_ids:
        await session.execute(
            insert(SegmentMember).values(segment_id=segment_id, customer_external_id=external_id)
        )
    return segment_id
