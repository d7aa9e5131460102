"""A segment rule through the real APIs and workers: entries on JetStream once, a merge folds
the duplicate into the survivor, an erasure leaves nothing of either in the segment schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from crm_common.broker import stream_name
from crm_common.events import Envelope
from crm_common.testing import asgi_client
from crm_segment.events import MEMBERSHIP_CHANGED
from tests.conftest import ADMIN_HEADERS
from tests.e2e.conftest import new_external_id, row

#: Rows of the segment schema about the customers (as themselves or as their root).
ABOUT = """
SELECT
  (SELECT count(*) FROM segment.segment_member WHERE customer_external_id = ANY(:ids)) AS members,
  (SELECT count(*) FROM segment.customer_score WHERE customer_external_id = ANY(:ids)) AS scores,
  (SELECT count(*) FROM segment.customer
     WHERE customer_external_id = ANY(:ids) OR root_external_id = ANY(:ids)) AS customers,
  (SELECT count(*) FROM segment."order"
     WHERE customer_external_id = ANY(:ids) OR root_external_id = ANY(:ids)) AS orders,
  (SELECT count(*) FROM segment.order_line l JOIN segment."order" o USING (order_external_id)
     WHERE o.customer_external_id = ANY(:ids)) AS order_lines,
  (SELECT count(*) FROM segment.evaluation_queue WHERE customer_external_id = ANY(:ids)) AS queued
"""


@pytest.fixture(scope="package")
async def segment_api() -> AsyncIterator[AsyncClient]:
    """The segment API with the admin key; every request commits."""
    from crm_segment.app import create_app

    async with asgi_client(create_app(), headers=ADMIN_HEADERS) as client:
        yield client


@pytest.fixture
async def membership_events(nats_client, eventually) -> AsyncIterator[Any]:
    """A JetStream pull subscription to segment's membership events published from now on."""
    js = nats_client.jetstream()

    async def stream_ready() -> bool:
        try:
            await js.stream_info(stream_name("segment"))
        except NotFoundError:
            return False
        return True

    await eventually(stream_ready)  # the segment worker creates it when it starts
    subscription = await js.pull_subscribe(
        MEMBERSHIP_CHANGED.subject,
        stream=stream_name("segment"),
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW, ack_policy=AckPolicy.NONE),
    )
    yield subscription
    await subscription.unsubscribe()


async def drain(subscription: Any, segment_id: str, into: list[tuple[str, str]]) -> None:
    """Append ``(customer, change)`` of every membership event of the segment received so far."""
    while True:
        try:
            messages = await subscription.fetch(200, timeout=0.2)
        except (NatsTimeout, TimeoutError):  # nats-py raises either when nothing is pending
            return
        for message in messages:
            envelope = Envelope.from_message(message.subject, message.headers, message.data)
            if envelope.data["segment_id"] == segment_id:
                into.append((envelope.data["customer_external_id"], envelope.data["change"]))


async def customer_with_order(api: AsyncClient, external_id: str) -> None:
    """A customer in profile with one order placed a day ago."""
    created = await api.put(f"/v1/customers/{external_id}", json={"country": "DE"})
    assert created.status_code == 201, created.text
    order = await api.post(
        "/v1/orders",
        json={
            "external_id": f"{external_id}-o1",
            "customer_external_id": external_id,
            "placed_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "currency": "EUR",
            "lines": [{"sku": "SKU-E2E", "quantity": 1, "unit_price_minor": 2500}],
            "discount_minor": 0,
            "shipping_minor": 0,
            "total_minor": 2500,
        },
    )
    assert order.status_code == 201, order.text


class TestSegmentMembership:
    async def test_entry_merge_and_erasure(
        self,
        profile_api,
        segment_api,
        database,
        eventually,
        erase_afterwards,
        membership_events,
    ):
        a, b = new_external_id("e2e-seg-a"), new_external_id("e2e-seg-b")
        erase_afterwards += [a, b]
        for external_id in (a, b):
            await customer_with_order(profile_api, external_id)

        created = await segment_api.post(
            "/v1/segments",
            json={
                "name": new_external_id("e2e recent buyers"),
                "rule": {"orders": {"within_days": 30, "count": {"gte": 1}}},
            },
        )
        assert created.status_code == 201, created.text
        segment_id = created.json()["id"]
        events: list[tuple[str, str]] = []

        async def members_are(*wanted: str) -> bool:
            await drain(membership_events, segment_id, events)
            listed = await segment_api.get(f"/v1/segments/{segment_id}/members")
            assert listed.status_code == 200, listed.text
            found = {m["customer_external_id"] for m in listed.json()["items"]}
            return found == set(wanted)

        async def received(*wanted: tuple[str, str]) -> bool:
            await drain(membership_events, segment_id, events)
            return all(w in events for w in wanted)

        try:
            # both enter, and their entries reach JetStream
            await eventually(lambda: members_are(a, b))
            await eventually(lambda: received((a, "entered"), (b, "entered")))

            # merge B into A: B leaves every segment, its orders count for A
            merged = await profile_api.post(
                f"/v1/customers/{a}/merge", json={"duplicate_external_id": b}
            )
            assert merged.status_code == 201, merged.text

            async def folded() -> bool:
                order = await row(
                    database,
                    'SELECT root_external_id FROM segment."order" WHERE customer_external_id = :b',
                    b=b,
                )
                memberships = await row(
                    database,
                    "SELECT count(*) AS n FROM segment.segment_member"
                    " WHERE customer_external_id = :b",
                    b=b,
                )
                return (
                    order == {"root_external_id": a}
                    and memberships == {"n": 0}
                    and await members_are(a)
                )

            await eventually(folded)
            await eventually(lambda: received((b, "exited")))

            # erase A (with its merged duplicate B): nothing of either is left in segment
            assert (await profile_api.delete(f"/v1/customers/{a}")).status_code == 204
            nothing = dict.fromkeys(
                ("members", "scores", "customers", "orders", "order_lines", "queued"), 0
            )

            async def erased() -> bool:
                return await row(database, ABOUT, ids=[a, b]) == nothing

            await eventually(erased)
            assert await members_are()
            # every change was published exactly once (an erasure publishes no exit)
            assert Counter(events) == {(a, "entered"): 1, (b, "entered"): 1, (b, "exited"): 1}
        finally:
            deleted = await segment_api.delete(f"/v1/segments/{segment_id}")
            assert deleted.status_code == 204, deleted.text
