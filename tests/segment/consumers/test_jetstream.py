"""Loyalty and recommend sample events through real JetStream into segment's consumers.

Neither producer publishes these events yet, so the tests publish samples built by the
producers' own ``EventType.envelope`` to the producers' streams, exactly as their relays will
(``Nats-Msg-Id`` = ``ce-id``), and run crm_common's ``Consumer`` (the worker's machinery: inbox
row and effects in one committed transaction, ack after commit) for each subscription. Rows
are committed, so every test uses ids of its own and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from crm_common.broker import ensure_stream
from crm_common.events import Consumer, Envelope, Subscription
from crm_common.settings import NatsSettings
from crm_loyalty.events import MEMBERSHIP_CHANGED, TIER_CHANGED
from crm_recommend.events import ITEM_CHANGED
from crm_segment.consumers.loyalty_events import MEMBERSHIPS, TIERS
from crm_segment.consumers.recommend_items import SUBSCRIPTION as ITEMS
from crm_segment.models import (
    CustomerLoyalty,
    EvaluationQueue,
    Item,
    dead_letter_table,
    inbox_table,
)
from tests.segment.conftest import at
from tests.segment.consumers.samples import item, membership, tier


@pytest.fixture
async def js(nats_client, crm_runtime):
    """JetStream with loyalty's and recommend's streams (their workers would create them)."""
    context = nats_client.jetstream()
    settings = NatsSettings(nats_url=crm_runtime.nats_url, duplicate_window_seconds=120)
    for service in ("loyalty", "recommend"):
        await ensure_stream(context, service, settings)
    return context


@pytest.fixture
async def ids(database) -> AsyncIterator[dict[str, str]]:
    """Unique customer and SKU ids; their committed rows are deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    made = {"customer": f"js-c-{suffix}", "other": f"js-o-{suffix}", "sku": f"JS-SKU-{suffix}"}
    yield made
    customers = [made["customer"], made["other"]]
    async with database.unit_of_work() as session:
        await session.execute(
            delete(CustomerLoyalty).where(CustomerLoyalty.customer_external_id.in_(customers))
        )
        await session.execute(
            delete(EvaluationQueue).where(EvaluationQueue.customer_external_id.in_(customers))
        )
        await session.execute(delete(Item).where(Item.sku == made["sku"]))


async def publish(js, *events: Envelope, msg_id: str | None = None) -> None:
    """Publish like the producer's relay (``Nats-Msg-Id`` = ``ce-id`` unless overridden)."""
    for event in events:
        headers = event.headers() | ({"Nats-Msg-Id": msg_id} if msg_id else {})
        await js.publish(event.subject, event.body(), headers=headers)


async def consume(database, js, *subscriptions: Subscription) -> None:
    """Run the subscriptions until each has handled everything waiting, then stop them."""
    stop = asyncio.Event()
    consumers = [Consumer(s, database, inbox_table, dead_letter_table, js) for s in subscriptions]
    tasks = [asyncio.create_task(c.run(stop, fetch_timeout=0.3)) for c in consumers]
    try:
        for consumer in consumers:
            await asyncio.wait_for(consumer.idle.wait(), 20)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def fetch(database: Any, stmt: Any) -> list[Any]:
    """Rows of ``stmt`` from committed data."""
    async with database.unit_of_work() as session:
        return list((await session.execute(stmt)).all())


class TestOverJetStream:
    async def test_loyalty_and_catalogue_samples_are_projected(self, database, js, ids):
        customer, other, sku = ids["customer"], ids["other"], ids["sku"]
        events = [
            TIER_CHANGED.envelope(tier(customer, "silver", at(1)), subject_id=customer),
            TIER_CHANGED.envelope(tier(customer, "gold", at(5)), subject_id=customer),
            MEMBERSHIP_CHANGED.envelope(
                membership(customer, "active", at(2), at(60 * 24 * 365)), subject_id=customer
            ),
            TIER_CHANGED.envelope(tier(other, "bronze", at(1)), subject_id=other),
            ITEM_CHANGED.envelope(item(sku, "garden", at(-600)), subject_id=sku, time=at(3)),
        ]
        await publish(js, *events)
        await consume(database, js, TIERS, MEMBERSHIPS, ITEMS)
        loyalty = await fetch(
            database,
            select(
                CustomerLoyalty.customer_external_id,
                CustomerLoyalty.tier,
                CustomerLoyalty.membership_status,
                CustomerLoyalty.root_external_id,
            )
            .where(CustomerLoyalty.customer_external_id.in_([customer, other]))
            .order_by(CustomerLoyalty.customer_external_id),
        )
        assert [tuple(r) for r in loyalty] == [
            (customer, "gold", "active", customer),
            (other, "bronze", None, other),
        ]
        [catalogued] = await fetch(
            database, select(Item.category, Item.launched_at).where(Item.sku == sku)
        )
        assert tuple(catalogued) == ("garden", at(-600))
        queue = await fetch(
            database,
            select(EvaluationQueue.customer_external_id).where(
                EvaluationQueue.customer_external_id.in_([customer, other])
            ),
        )
        assert {r[0] for r in queue} == {customer, other}
        for event in events:
            claimed = select(func.count()).where(inbox_table.c.event_id == event.id)
            assert (await fetch(database, claimed))[0][0] == 1

    async def test_a_redelivered_event_is_handled_once(self, database, js, ids):
        customer = ids["customer"]
        first = TIER_CHANGED.envelope(tier(customer, "gold", at(5)), subject_id=customer)
        await publish(js, first)
        await consume(database, js, TIERS)
        # An older tier, then the first event again past JetStream's duplicate window.
        older = TIER_CHANGED.envelope(tier(customer, "silver", at(1)), subject_id=customer)
        await publish(js, older)
        await publish(js, first, msg_id=str(uuid.uuid4()))
        await consume(database, js, TIERS)
        [row] = await fetch(
            database,
            select(CustomerLoyalty.tier, CustomerLoyalty.tier_changed_at).where(
                CustomerLoyalty.customer_external_id == customer
            ),
        )
        assert tuple(row) == ("gold", at(5))
        claimed = select(func.count()).where(
            inbox_table.c.consumer == TIERS.durable, inbox_table.c.event_id == first.id
        )
        assert (await fetch(database, claimed))[0][0] == 1

    async def test_a_malformed_sample_is_dead_lettered(self, database, js, ids):
        customer = ids["customer"]
        bad = TIER_CHANGED.envelope(tier(customer, "gold", at(5)), subject_id=customer)
        bad.data["changed_at"] = "yesterday"
        await publish(js, bad)
        await consume(database, js, TIERS)
        t = dead_letter_table
        dead = select(func.count()).where(
            t.c.consumer == TIERS.durable, t.c.event_id == str(bad.id)
        )
        assert (await fetch(database, dead))[0][0] == 1
        rows = select(func.count()).where(CustomerLoyalty.customer_external_id == customer)
        assert (await fetch(database, rows))[0][0] == 0
        async with database.unit_of_work() as session:
            await session.execute(delete(t).where(t.c.event_id == str(bad.id)))
