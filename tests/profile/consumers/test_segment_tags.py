"""``crm.segment.tag.changed`` through real NATS into profile's ``profile-segment-tags`` consumer.

Samples of segment's ``TagChangedV1`` are published to the ``CRM_SEGMENT`` stream; crm_common's
``Consumer`` runs the subscription against committed rows (unique ids, removed afterwards).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from crm_common.broker import ensure_stream
from crm_common.events import Consumer, Envelope
from crm_common.settings import NatsSettings
from crm_common.testing import asgi_client
from crm_profile.consumers import SUBSCRIPTIONS
from crm_profile.consumers.segment_tags import SUBSCRIPTION
from crm_profile.models import (
    Customer,
    CustomerTag,
    CustomerTagChange,
    dead_letter_table,
    inbox_table,
)
from tests.conftest import ADMIN_HEADERS

SUBJECT = "crm.segment.tag.changed"
T = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
async def js(nats_client, crm_runtime):
    """JetStream with segment's stream in place (segment's worker would create it)."""
    context = nats_client.jetstream()
    settings = NatsSettings(nats_url=crm_runtime.nats_url, duplicate_window_seconds=120)
    await ensure_stream(context, "segment", settings)
    return context


@pytest.fixture
async def customers(app, database) -> AsyncIterator[list[str]]:
    """Create committed customers through the API; deleted (with their tags) afterwards."""
    created: list[str] = []
    yield created
    async with database.unit_of_work() as session:
        await session.execute(delete(Customer).where(Customer.external_id.in_(created)))


async def create(app, customers: list[str], count: int) -> list[str]:
    """``count`` new committed customers with unique external ids."""
    ids = [f"seg-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    async with asgi_client(app, headers=ADMIN_HEADERS) as api:
        for external_id in ids:
            assert (await api.put(f"/v1/customers/{external_id}", json={})).status_code == 201
    customers += ids
    return ids


def tag_changed(
    external_id: str,
    tag: str,
    change: str,
    changed_at: datetime,
    overrides: dict[str, Any] | None = None,
) -> Envelope:
    """A ``crm.segment.tag.changed`` event as segment's outbox would publish it."""
    payload = {
        "customer_external_id": external_id,
        "tag": tag,
        "change": change,
        "changed_at": changed_at.isoformat(),
    } | (overrides or {})
    return Envelope(
        subject=SUBJECT,
        type=f"{SUBJECT}.v1",
        source="/crm/segment",
        subject_id=external_id,
        data=payload,
    )


async def publish(js, *events: Envelope, msg_id: str | None = None) -> None:
    """Publish like segment's relay (``Nats-Msg-Id`` = event id unless overridden)."""
    for event in events:
        headers = event.headers() | ({"Nats-Msg-Id": msg_id} if msg_id else {})
        await js.publish(SUBJECT, event.body(), headers=headers)


async def consume(database, js) -> None:
    """Run the subscription until it has handled everything waiting, then stop it."""
    consumer = Consumer(SUBSCRIPTION, database, inbox_table, dead_letter_table, js)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop, fetch_timeout=0.3))
    try:
        await asyncio.wait_for(consumer.idle.wait(), 20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def tags(database, external_id: str) -> list[str]:
    """Segment tags stored for ``external_id``."""
    async with database.unit_of_work() as session:
        rows = await session.execute(
            select(CustomerTag.tag)
            .join(Customer, Customer.id == CustomerTag.customer_id)
            .where(Customer.external_id == external_id, CustomerTag.origin == "segment")
            .order_by(CustomerTag.tag)
        )
        return list(rows.scalars())


async def count(database, stmt) -> int:
    """``SELECT count(*)`` of ``stmt``."""
    async with database.unit_of_work() as session:
        return int((await session.execute(stmt)).scalar_one())


def inbox_rows(event: Envelope):
    """The consumer's inbox rows for ``event``."""
    return (
        select(func.count())
        .select_from(inbox_table)
        .where(inbox_table.c.consumer == SUBSCRIPTION.durable, inbox_table.c.event_id == event.id)
    )


def dead_letters(event: Envelope):
    """The consumer's dead letters for ``event``."""
    t = dead_letter_table
    return (
        select(func.count())
        .select_from(t)
        .where(t.c.consumer == SUBSCRIPTION.durable, t.c.event_id == str(event.id))
    )


class TestSubscription:
    def test_is_registered_with_its_durable_name(self):
        assert SUBSCRIPTION in SUBSCRIPTIONS
        assert (SUBSCRIPTION.subject, SUBSCRIPTION.durable) == (SUBJECT, "profile-segment-tags")
        assert SUBSCRIPTION.stream == "CRM_SEGMENT"


class TestOnTagChanged:
    async def test_added_and_removed_tags_land_on_the_customer(self, app, database, js, customers):
        first, second = await create(app, customers, 2)
        events = [
            tag_changed(first, "vip", "added", T),
            tag_changed(first, "churn_risk", "added", T),
            tag_changed(second, "new_product_trier", "added", T, {"rule_id": "r-1"}),
            tag_changed(first, "churn_risk", "removed", T + timedelta(days=1)),
        ]
        await publish(js, *events)
        await consume(database, js)
        assert await tags(database, first) == ["vip"]
        assert await tags(database, second) == ["new_product_trier"]
        for event in events:
            assert await count(database, inbox_rows(event)) == 1

    async def test_redelivery_is_a_no_op(self, app, database, js, customers):
        [external_id] = await create(app, customers, 1)
        event = tag_changed(external_id, "vip", "added", T)
        await publish(js, event)
        await consume(database, js)
        # The same event again, past JetStream's duplicate window (a new Nats-Msg-Id).
        await publish(js, event, msg_id=str(uuid.uuid4()))
        await consume(database, js)
        assert await tags(database, external_id) == ["vip"]
        changes = (
            select(func.count())
            .select_from(CustomerTagChange)
            .join(Customer, Customer.id == CustomerTagChange.customer_id)
            .where(Customer.external_id == external_id)
        )
        assert await count(database, changes) == 1
        assert await count(database, inbox_rows(event)) == 1

    async def test_unknown_customer_is_ignored(self, database, js):
        event = tag_changed(f"seg-unknown-{uuid.uuid4().hex[:8]}", "vip", "added", T)
        await publish(js, event)
        await consume(database, js)
        assert await count(database, inbox_rows(event)) == 1
        assert await count(database, dead_letters(event)) == 0

    @pytest.mark.parametrize(
        "data",
        [
            {"change": "maybe"},
            {"tag": "Not A Tag"},
            {"changed_at": "yesterday"},
            {"customer_external_id": None},
        ],
    )
    async def test_bad_payload_is_dead_lettered(self, app, database, js, customers, data):
        [external_id] = await create(app, customers, 1)
        event = tag_changed(external_id, "vip", "added", T, data)
        await publish(js, event)
        await consume(database, js)
        assert await count(database, dead_letters(event)) == 1
        assert await count(database, inbox_rows(event)) == 0
        assert await tags(database, external_id) == []
        async with database.unit_of_work() as session:
            await session.execute(
                delete(dead_letter_table).where(dead_letter_table.c.event_id == str(event.id))
            )
