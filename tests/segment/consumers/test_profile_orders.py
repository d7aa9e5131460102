"""Profile's order events → ``order`` / ``order_line`` (``segment-profile-orders``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from crm_common.events import Envelope
from crm_profile.events import (
    CUSTOMER_CREATED,
    CUSTOMER_MERGED,
    ORDER_PLACED,
    ORDER_REFUNDED,
    ORDER_STATUS_CHANGED,
)
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.consumers.profile_customers import on_profile_customer
from crm_segment.consumers.profile_orders import SUBSCRIPTION, on_profile_order
from crm_segment.models import Order, OrderLine
from crm_segment.projections.errors import OrderNotProjectedYet
from tests.segment.conftest import at, envelope
from tests.segment.consumers.samples import fresh, placed, queued, refunded, status
from tests.segment.consumers.test_profile_customers import customer, merged

handle = on_profile_order


async def order_row(session: Any, order: str) -> Any:
    """The projected order."""
    [row] = await fresh(session, Order, Order.order_external_id == order)
    return row


class TestSubscription:
    def test_one_durable_for_every_order_event(self):
        assert (SUBSCRIPTION.subject, SUBSCRIPTION.durable) == (
            "crm.profile.order.>",
            "segment-profile-orders",
        )
        assert SUBSCRIPTION in SUBSCRIPTIONS


class TestPlaced:
    async def test_projects_the_order_and_its_lines(self, session):
        payload = placed(
            "po-1",
            "pc-1",
            ("SKU-A", 2, 1500, "shoes"),
            ("SKU-B", 1, 999, None),
            discount_minor=100,
            shipping_minor=490,
            total_minor=4389,
            coupon_codes=["WELCOME"],
            points_redeemed=50,
            channel="app",
        )
        await handle(session, envelope(ORDER_PLACED, payload, at(5)))
        row = await order_row(session, "po-1")
        assert (row.order_id, row.customer_external_id, row.root_external_id) == (
            uuid.UUID(payload.order_id),
            "pc-1",
            "pc-1",
        )
        assert (row.placed_at, row.currency, row.total_minor) == (at(0), "EUR", 4389)
        assert (row.discount_minor, row.shipping_minor, row.channel) == (100, 490, "app")
        assert (row.coupon_codes, row.points_redeemed) == (["WELCOME"], 50)
        assert (row.status, row.status_changed_at, row.refunded_minor) == ("placed", at(5), 0)
        assert row.fully_refunded is False
        lines = await fresh(session, OrderLine, OrderLine.order_external_id == "po-1")
        assert sorted(
            (x.line_no, x.sku, x.category, x.quantity, x.unit_price_minor) for x in lines
        ) == [
            (1, "SKU-A", "shoes", 2, 1500),
            (2, "SKU-B", None, 1, 999),
        ]
        assert await queued(session) == {"pc-1": "input"}

    async def test_the_same_order_twice_is_projected_once(self, session):
        event = envelope(ORDER_PLACED, placed("po-2", "pc-2"), at(0))
        await handle(session, event)
        await handle(session, envelope(ORDER_PLACED, placed("po-2", "pc-2", total_minor=1), at(1)))
        await handle(session, event)
        assert (await order_row(session, "po-2")).total_minor == 3000
        assert len(await fresh(session, OrderLine, OrderLine.order_external_id == "po-2")) == 1

    async def test_counts_for_the_survivor_of_a_merged_customer(self, session):
        s, d = ("pc-3s", uuid.uuid4()), ("pc-3d", uuid.uuid4())
        await on_profile_customer(session, envelope(CUSTOMER_CREATED, customer(*s), at(0)))
        await on_profile_customer(session, envelope(CUSTOMER_MERGED, merged(s, d), at(1)))
        await handle(session, envelope(ORDER_PLACED, placed("po-3", "pc-3d"), at(2)))
        row = await order_row(session, "po-3")
        assert (row.customer_external_id, row.root_external_id) == ("pc-3d", "pc-3s")
        assert "pc-3s" in await queued(session)


class TestStatusChanged:
    async def test_a_newer_status_applies_and_an_older_one_is_ignored(self, session):
        await handle(session, envelope(ORDER_PLACED, placed("po-10", "pc-10"), at(0)))
        shipped = envelope(ORDER_STATUS_CHANGED, status("po-10", "pc-10", "shipped"), at(20))
        await handle(session, shipped)
        paid = envelope(ORDER_STATUS_CHANGED, status("po-10", "pc-10", "paid"), at(10))
        await handle(session, paid)  # late: older than shipped
        await handle(session, shipped)  # redelivered: same time, nothing changes
        row = await order_row(session, "po-10")
        assert (row.status, row.status_changed_at) == ("shipped", at(20))

    async def test_a_cancellation_counts(self, session):
        await handle(session, envelope(ORDER_PLACED, placed("po-11", "pc-11"), at(0)))
        event = status("po-11", "pc-11", "cancelled")
        await handle(session, envelope(ORDER_STATUS_CHANGED, event, at(3)))
        assert (await order_row(session, "po-11")).status == "cancelled"

    async def test_a_status_before_its_order_is_retried(self, session):
        event = envelope(ORDER_STATUS_CHANGED, status("po-12", "pc-12", "paid"), at(3))
        with pytest.raises(OrderNotProjectedYet, match="po-12"):
            await handle(session, event)
        await handle(session, envelope(ORDER_PLACED, placed("po-12", "pc-12"), at(0)))
        await handle(session, event)  # the redelivery now applies
        assert (await order_row(session, "po-12")).status == "paid"


class TestRefunded:
    async def test_records_the_cumulative_refund(self, session):
        await handle(session, envelope(ORDER_PLACED, placed("po-20", "pc-20"), at(0)))
        await handle(
            session, envelope(ORDER_REFUNDED, refunded("po-20", "pc-20", 3000, 500, False), at(5))
        )
        row = await order_row(session, "po-20")
        assert (row.refunded_minor, row.fully_refunded) == (500, False)
        full = envelope(ORDER_REFUNDED, refunded("po-20", "pc-20", 3000, 3000, True), at(9))
        await handle(session, full)
        await handle(session, full)
        row = await order_row(session, "po-20")
        assert (row.refunded_minor, row.fully_refunded) == (3000, True)

    async def test_an_older_refund_arriving_late_changes_nothing(self, session):
        await handle(session, envelope(ORDER_PLACED, placed("po-21", "pc-21"), at(0)))
        for so_far, full, minute in ((3000, True, 9), (500, False, 5)):
            event = refunded("po-21", "pc-21", 3000, so_far, full)
            await handle(session, envelope(ORDER_REFUNDED, event, at(minute)))
        row = await order_row(session, "po-21")
        assert (row.refunded_minor, row.fully_refunded) == (3000, True)

    async def test_a_refund_before_its_order_is_retried(self, session):
        event = envelope(ORDER_REFUNDED, refunded("po-22", "pc-22", 3000, 10, False), at(5))
        with pytest.raises(OrderNotProjectedYet):
            await handle(session, event)


class TestOtherSubjects:
    async def test_an_unknown_order_event_is_skipped(self, session):
        event = Envelope(
            subject="crm.profile.order.archived",
            type="crm.profile.order.archived.v1",
            source="/crm/profile",
            subject_id="po-30",
            data={"order_external_id": "po-30"},
        )
        await handle(session, event)
        assert await fresh(session, Order, Order.order_external_id == "po-30") == []
