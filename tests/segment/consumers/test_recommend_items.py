"""Recommend's catalogue events → ``item`` (sample events of the contract)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from crm_profile.events import ORDER_PLACED
from crm_recommend.events import ITEM_CHANGED
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.consumers.profile_orders import on_profile_order
from crm_segment.consumers.recommend_items import SUBSCRIPTION, on_item_changed
from crm_segment.models import EvaluationQueue, Item
from tests.segment.conftest import at, envelope
from tests.segment.consumers.samples import fresh, item, placed, queued

handle = on_item_changed


async def item_row(session: Any, sku: str) -> Any:
    """The projected item."""
    [row] = await fresh(session, Item, Item.sku == sku)
    return row


class TestSubscription:
    def test_durable(self):
        assert (SUBSCRIPTION.subject, SUBSCRIPTION.durable, SUBSCRIPTION.stream) == (
            "crm.recommend.item.changed",
            "segment-recommend-items",
            "CRM_RECOMMEND",
        )
        assert SUBSCRIPTION in SUBSCRIPTIONS


class TestItemChanged:
    async def test_the_newest_event_wins(self, session):
        newer = envelope(ITEM_CHANGED, item("SKU-I1", "bags", at(100)), at(20))
        await handle(session, envelope(ITEM_CHANGED, item("SKU-I1", "shoes", at(50)), at(10)))
        await handle(session, newer)
        await handle(session, envelope(ITEM_CHANGED, item("SKU-I1", "hats", None), at(15)))
        await handle(session, newer)
        row = await item_row(session, "SKU-I1")
        assert (row.category, row.launched_at, row.updated_at) == ("bags", at(100), at(20))

    async def test_a_new_launch_date_queues_the_buyers_once(self, session):
        await on_profile_order(
            session,
            envelope(ORDER_PLACED, placed("pr-o1", "pr-1", ("SKU-I2", 1, 100, None)), at(0)),
        )
        await on_profile_order(
            session, envelope(ORDER_PLACED, placed("pr-o2", "pr-2", ("SKU-X", 1, 100, None)), at(0))
        )
        await session.execute(delete(EvaluationQueue))
        await handle(session, envelope(ITEM_CHANGED, item("SKU-I2", "toys", at(-60)), at(1)))
        assert await queued(session) == {"pr-1": "input"}
        await session.execute(delete(EvaluationQueue))
        # Same fields, newer event: nothing a rule reads changed, so nobody is queued.
        await handle(session, envelope(ITEM_CHANGED, item("SKU-I2", "toys", at(-60)), at(2)))
        assert await queued(session) == {}
