"""``GET /v1/customers/{external_id}/timeline``: every kind, newest first, across the merge group."""

from __future__ import annotations

import base64
import uuid

import orjson
import pytest
from sqlalchemy import event

from crm_profile.customers.repository import CustomerRepository
from crm_profile.timeline.repository import TimelineRepository
from crm_profile.timeline.schemas import KINDS
from tests.profile.conftest import put_customer
from tests.profile.timeline.factories import (
    add_event,
    add_order,
    add_refund,
    add_status,
    at,
    customer_row,
    merge,
    unmerge,
)


async def timeline(client, external_id: str, **params) -> dict:
    """One page of the timeline."""
    response = await client.get(f"/v1/customers/{external_id}/timeline", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def everything(client, external_id: str, **params) -> list[dict]:
    """Every item, following the cursors."""
    items, cursor = [], None
    while True:
        page = await timeline(
            client, external_id, **params, **({"cursor": cursor} if cursor else {})
        )
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def cursor_of(*values) -> str:
    """A cursor built by hand (as a client might forge one)."""
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


async def story(client, session, external_id: str = "tm-1") -> dict:
    """A customer with one item of every kind that has rows, at minutes 1-10 after T0."""
    await put_customer(client, external_id)
    customer = await customer_row(session, external_id)
    ids: dict = {}
    ids["event"] = await add_event(session, customer, at(1), sku="SKU-9", category="shoes")
    order = await add_order(session, customer, at(2), total_minor=2500)
    ids["order"] = str(order.id)
    ids["order_external_id"] = order.external_id
    await add_status(session, order, "placed", at(2))  # the order item itself stands for it
    ids["order_status"] = str(await add_status(session, order, "paid", at(3)))
    ids["refund"] = str(await add_refund(session, order, 500, at(4)))
    await client.put(
        f"/v1/customers/{external_id}/consents/email",
        json={"status": "granted", "source": "checkout", "decided_at": at(5).isoformat()},
    )
    await put_customer(client, f"{external_id}-dup")
    duplicate = await customer_row(session, f"{external_id}-dup")
    ids["dup_event"] = await add_event(session, duplicate, at(6), type="search", sku=None)
    merge_id = await merge(session, external_id, f"{external_id}-dup", when=at(7))
    ids["merge"] = str(merge_id)
    return ids


class TestTimeline:
    async def test_every_kind_newest_first_with_its_summary(self, client, session):
        ids = await story(client, session)
        await client.post("/v1/customers/tm-1/tags/vip")  # now: newer than everything above
        items = (await timeline(client, "tm-1"))["items"]
        assert [i["kind"] for i in items] == [
            "tag",
            "merge",
            "event",
            "consent",
            "refund",
            "order_status",
            "order",
            "event",
        ]
        tag, merged, dup_event, consent, refund, status, order, event_ = items
        assert (tag["tag"], tag["origin"], tag["change"]) == ("vip", "manual", "added")
        assert merged == {
            "at": at(7).isoformat().replace("+00:00", "Z"),
            "kind": "merge",
            "id": ids["merge"],
            "customer_external_id": "tm-1",
            "survivor_external_id": "tm-1",
            "duplicate_external_id": "tm-1-dup",
            "rule": "manual",
        }
        assert (dup_event["id"], dup_event["customer_external_id"], dup_event["type"]) == (
            ids["dup_event"],
            "tm-1-dup",
            "search",
        )
        assert (consent["channel"], consent["purpose"], consent["status"]) == (
            "email",
            "marketing",
            "granted",
        )
        assert consent["source"] == "checkout"
        assert (refund["id"], refund["amount_minor"], refund["currency"]) == (
            ids["refund"],
            500,
            "EUR",
        )
        assert refund["order_external_id"] == ids["order_external_id"]
        assert (status["id"], status["status"]) == (ids["order_status"], "paid")
        assert (order["id"], order["total_minor"], order["status"]) == (
            ids["order"],
            2500,
            "placed",
        )
        assert order["channel"] == "web"
        assert event_ == {
            "at": at(1).isoformat().replace("+00:00", "Z"),
            "kind": "event",
            "id": ids["event"],
            "customer_external_id": "tm-1",
            "type": "product_view",
            "sku": "SKU-9",
            "category": "shoes",
            "value_minor": None,
        }

    async def test_pages_walk_the_whole_timeline_once(self, client, session):
        await story(client, session)
        customer = await customer_row(session, "tm-1")
        for minute in (1, 1, 1, 3, 3):  # ties on ``at`` across and within kinds
            await add_event(session, customer, at(minute))
        whole = (await timeline(client, "tm-1", limit=200))["items"]
        for limit in (1, 2, 3):
            walked = await everything(client, "tm-1", limit=limit)
            assert walked == whole
        keys = [(i["at"], i["kind"], i["id"]) for i in whole]
        assert len(set(keys)) == len(keys) == 12

    async def test_types_filter(self, client, session):
        await story(client, session)
        page = await timeline(client, "tm-1", types="order,refund")
        assert [i["kind"] for i in page["items"]] == ["refund", "order"]
        response = await client.get(
            "/v1/customers/tm-1/timeline", params=[("types", "consent"), ("types", "merge,merge")]
        )
        assert [i["kind"] for i in response.json()["items"]] == ["merge", "consent"]

    async def test_messages_are_empty_until_notify_publishes_them(self, client, session):
        await story(client, session)
        assert await timeline(client, "tm-1", types="message") == {"items": [], "next_cursor": None}

    async def test_the_duplicates_id_reads_the_survivors_timeline(self, client, session):
        await story(client, session)
        survivor = await everything(client, "tm-1")
        assert await everything(client, "tm-1-dup") == survivor

    async def test_after_an_unmerge_each_side_has_its_own_again(self, client, session):
        ids = await story(client, session)
        await unmerge(session, uuid.UUID(ids["merge"]), when=at(8))
        survivor = await everything(client, "tm-1")
        duplicate = await everything(client, "tm-1-dup")
        assert ids["dup_event"] not in {i["id"] for i in survivor}
        assert [i["kind"] for i in duplicate] == ["unmerge", "merge", "event"]
        assert [i["kind"] for i in survivor][:2] == ["unmerge", "merge"]

    async def test_consent_decisions_overridden_later_are_shown(self, client, session):
        await put_customer(client, "tm-2")
        for minute, status in ((10, "granted"), (5, "denied")):
            await client.put(
                "/v1/customers/tm-2/consents/sms",
                json={"status": status, "source": "s", "decided_at": at(minute).isoformat()},
            )
        items = (await timeline(client, "tm-2"))["items"]
        assert [(i["kind"], i["status"]) for i in items] == [
            ("consent", "granted"),
            ("consent", "denied"),
        ]

    async def test_tag_removals_are_shown(self, client, session):
        await put_customer(client, "tm-3")
        await client.post("/v1/customers/tm-3/tags/vip")
        await client.delete("/v1/customers/tm-3/tags/vip")
        items = (await timeline(client, "tm-3", types="tag"))["items"]
        assert sorted(i["change"] for i in items) == ["added", "removed"]

    async def test_empty(self, client):
        await put_customer(client, "tm-4")
        assert await timeline(client, "tm-4") == {"items": [], "next_cursor": None}

    async def test_unknown_customer(self, client):
        response = await client.get("/v1/customers/tm-nobody/timeline")
        assert response.status_code == 404

    async def test_anonymous(self, anonymous):
        assert (await anonymous.get("/v1/customers/x/timeline")).status_code == 401

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"types": "event,shipment"}, "query.types"),
            ({"types": "EVENT"}, "query.types"),
            ({"limit": 0}, "query.limit"),
            ({"limit": 201}, "query.limit"),
            ({"limit": "many"}, "query.limit"),
        ],
    )
    async def test_invalid_query_is_a_422_naming_it(self, client, params, field):
        await put_customer(client, "tm-5")
        response = await client.get("/v1/customers/tm-5/timeline", params=params)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]

    @pytest.mark.parametrize(
        "cursor",
        [
            "not-a-cursor",
            cursor_of("2026-11-01T12:00:00+00:00", "event"),
            cursor_of("2026-11-01T12:00:00+00:00", "shipment", "x"),
            cursor_of("2026-11-01T12:00:00", "event", "x"),
            cursor_of("yesterday", "event", "x"),
            cursor_of("2026-11-01T12:00:00+00:00", "event", 7),
        ],
    )
    async def test_foreign_cursor_is_a_400(self, client, cursor):
        await put_customer(client, "tm-6")
        response = await client.get("/v1/customers/tm-6/timeline", params={"cursor": cursor})
        assert response.status_code == 400
        assert response.json()["type"] == "urn:crm:problem:invalid-cursor"


class TestTimelineRepository:
    async def test_one_statement_for_every_kind(self, client, session):
        await story(client, session)
        customer = await customer_row(session, "tm-1")
        group = await CustomerRepository(session).group_ids(customer.id)
        statements: list[str] = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        connection = await session.connection()
        event.listen(connection.sync_connection, "before_cursor_execute", count)
        try:
            rows = await TimelineRepository(session).page(group, KINDS, after=None, limit=50)
        finally:
            event.remove(connection.sync_connection, "before_cursor_execute", count)
        assert len(rows) == 7
        assert len(statements) == 1
        assert statements[0].count("UNION ALL") == 7
