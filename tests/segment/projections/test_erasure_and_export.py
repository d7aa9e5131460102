"""Erasure deletes a customer's rows in every segment table; an export lists them all."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Table, delete, func, select

from crm_profile.events import CUSTOMER_ERASED, EXPORT_REQUESTED
from crm_segment.consumers.profile_customers import on_profile_customer
from crm_segment.consumers.profile_exports import on_export_requested
from crm_segment.customers.service import export_part
from crm_segment.models import (
    Customer,
    CustomerConsent,
    CustomerLoyalty,
    CustomerScore,
    CustomerTag,
    EvaluationQueue,
    InteractionDaily,
    Order,
    OrderLine,
    Segment,
    SegmentMember,
)
from tests.segment.conftest import at, envelope, published
from tests.segment.consumers.samples import queued
from tests.segment.consumers.test_profile_customers import erased
from tests.segment.consumers.test_profile_exports import requested
from tests.segment.projections.conftest import merge, person, scored, segment_with, with_data

#: Every table of the schema keyed by a customer (order lines are keyed by their order).
KEYED = [
    Customer,
    Order,
    InteractionDaily,
    CustomerConsent,
    CustomerTag,
    CustomerLoyalty,
    CustomerScore,
    SegmentMember,
    EvaluationQueue,
]


async def rows_about(session, *external_ids: str) -> dict[str, int]:
    """How many rows each customer-keyed table (and order_line) holds about ``external_ids``."""
    counts: dict[str, int] = {}
    for model in KEYED:
        table: Table = model.__table__  # type: ignore[assignment]
        stmt = select(func.count()).where(table.c.customer_external_id.in_(external_ids))
        counts[table.name] = (await session.execute(stmt)).scalar_one()
    orders = [f"{e}-o1" for e in external_ids]
    lines = select(func.count()).where(OrderLine.order_external_id.in_(orders))
    counts["order_line"] = (await session.execute(lines)).scalar_one()
    return counts


async def members_count(session: Any, segment_id: uuid.UUID) -> Any:
    """The segment's stored member count."""
    stmt = select(Segment.members_count).where(Segment.id == segment_id)
    return (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one()


class TestErasure:
    async def test_every_table_loses_the_erased_customers_rows(self, session):
        s, d, other = person("er-1s"), person("er-1d"), person("er-1o")
        for who in (s, d, other):
            await with_data(session, who)
        await merge(session, s, d, 10)
        await scored(session, "er-1s", "er-1o")
        segment_id = await segment_with(session, "erasure test", "er-1s", "er-1o")
        assert set((await rows_about(session, "er-1s", "er-1d")).values()) != {0}

        await on_profile_customer(session, envelope(CUSTOMER_ERASED, erased(s, d), at(30)))

        everything = await rows_about(session, "er-1s", "er-1d")
        assert everything == dict.fromkeys(everything, 0)
        kept = await rows_about(session, "er-1o")
        assert kept["order"] == kept["order_line"] == kept["customer_score"] == 1
        assert kept["segment_member"] == kept["interaction_daily"] == kept["customer_tag"] == 1
        assert await members_count(session, segment_id) == 1

    async def test_erasing_a_duplicate_alone_re_evaluates_its_survivor(self, session):
        s, d = person("er-2s"), person("er-2d")
        for who in (s, d):
            await with_data(session, who)
        await merge(session, s, d, 10)
        await session.execute(delete(EvaluationQueue))
        await on_profile_customer(session, envelope(CUSTOMER_ERASED, erased(d), at(30)))
        assert await queued(session) == {"er-2s": "input"}
        assert (await rows_about(session, "er-2d"))["order"] == 0
        assert (await rows_about(session, "er-2s"))["order"] == 1


class TestExport:
    async def test_lists_every_row_of_the_group(self, session):
        s, d, other = person("ex-1s"), person("ex-1d"), person("ex-1o")
        for who in (s, d, other):
            await with_data(session, who)
        await merge(session, s, d, 10)
        await scored(session, "ex-1s")
        await segment_with(session, "export test", "ex-1s")
        part = await export_part(session, ["ex-1s", "ex-1d"])
        both = ["ex-1d", "ex-1s"]
        for kind in ("customers", "orders", "interactions", "consents", "tags", "loyalty"):
            assert sorted(r["customer_external_id"] for r in part[kind]) == both, kind
        order = next(o for o in part["orders"] if o["customer_external_id"] == "ex-1d")
        assert order["root_external_id"] == "ex-1s"
        assert [(x["line_no"], x["sku"], x["quantity"]) for x in order["lines"]] == [
            (1, "SKU-1", 1)
        ]
        [interaction] = [i for i in part["interactions"] if i["customer_external_id"] == "ex-1s"]
        assert (interaction["type"], interaction["count"], interaction["day"]) == (
            "product_view",
            1,
            "2026-11-10",
        )
        assert {(t["tag"], t["origin"]) for t in part["tags"]} == {("vip", "manual")}
        assert {c["status"] for c in part["consents"]} == {"granted"}
        assert {x["tier"] for x in part["loyalty"]} == {"gold"}
        assert [x["customer_external_id"] for x in part["scores"]] == ["ex-1s"]
        [member] = part["segments"]
        assert (member["customer_external_id"], member["segment_name"]) == ("ex-1s", "export test")

    async def test_is_published_as_segments_part(self, session):
        await with_data(session, person("ex-2"))
        export_id = str(uuid.uuid4())
        event = envelope(EXPORT_REQUESTED, requested(export_id, "ex-2"), at(1))
        await on_export_requested(session, event)
        [contributed] = await published(session, "crm.segment.export.contributed")
        data = contributed["data"]
        assert [o["order_external_id"] for o in data["orders"]] == ["ex-2-o1"]
        assert data["orders"][0]["lines"][0]["sku"] == "SKU-1"
