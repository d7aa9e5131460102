"""``orders`` and ``events`` conditions, segment membership, and what a compiled rule reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from crm_segment.rules.compiler import compile_rule
from tests.segment.rules.factories import (
    NOW,
    customer,
    interactions,
    item,
    matching,
    member,
    order,
    segment,
)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


class TestOrders:
    async def test_count_eq_zero_means_no_order_in_the_window(self, session):
        for cid in ("c-1", "c-2", "c-3", "c-4"):
            await customer(session, cid)
        await order(session, "o-1", "c-1", days_ago(5))
        await order(session, "o-2", "c-2", days_ago(45))  # outside 30 days
        await order(session, "o-3", "c-3", days_ago(3), status="cancelled")
        await order(session, "o-4", "c-4", days_ago(3), fully_refunded=True, refunded_minor=1000)
        rule = {"orders": {"within_days": 30, "count": {"eq": 0}}}
        assert await matching(session, rule) == ["c-2", "c-3", "c-4"]
        assert await matching(session, {"orders": {"within_days": 30}}) == ["c-1"]
        assert await matching(session, {"orders": {"within_days": 60}}) == ["c-1", "c-2"]

    async def test_window_edges(self, session):
        await customer(session, "c-1")
        await order(session, "o-1", "c-1", days_ago(30))
        await order(session, "o-2", "c-1", NOW + timedelta(seconds=1))
        rule = {"orders": {"within_days": 30}}
        # placed exactly 30 days ago: left the window now; placed after `now`: not yet in it
        assert await matching(session, rule) == []
        assert await matching(session, rule, now=NOW - timedelta(seconds=1)) == ["c-1"]

    async def test_count_and_sum_bounds(self, session):
        await customer(session, "c-1")
        await customer(session, "c-2")
        await order(session, "o-1", "c-1", days_ago(1), total=3000, refunded_minor=1000)
        await order(session, "o-2", "c-1", days_ago(2), total=500)
        await order(session, "o-3", "c-2", days_ago(2), total=9000)
        assert await matching(session, {"orders": {"within_days": 7, "count": {"gte": 2}}}) == [
            "c-1"
        ]
        # net of refunds: c-1 paid 2000 + 500
        rule = {"orders": {"within_days": 7, "sum_minor": {"between": [2500, 2500]}}}
        assert await matching(session, rule) == ["c-1"]
        rule = {"orders": {"within_days": 7, "count": {"lt": 2}, "sum_minor": {"gt": 5000}}}
        assert await matching(session, rule) == ["c-2"]
        rule = {"orders": {"within_days": 7, "count": {"gte": 1, "lte": 1}}}
        assert await matching(session, rule) == ["c-2"]

    async def test_category_and_sku(self, session):
        await customer(session, "c-1")
        await customer(session, "c-2")
        await order(
            session, "o-1", "c-1", days_ago(1), lines=[("SKU-1", "shoes"), ("SKU-2", "hats")]
        )
        await order(session, "o-2", "c-2", days_ago(1), lines=[("SKU-3", "shoes")])
        rule = {"orders": {"within_days": 7, "category": "shoes"}}
        assert await matching(session, rule) == ["c-1", "c-2"]
        rule = {"orders": {"within_days": 7, "category": "shoes", "sku": "SKU-1"}}
        assert await matching(session, rule) == ["c-1"]
        # category and sku must hold on the same line
        rule = {"orders": {"within_days": 7, "category": "hats", "sku": "SKU-1"}}
        assert await matching(session, rule) == []
        rule = {"orders": {"within_days": 7, "sku": "SKU-3", "count": {"eq": 0}}}
        assert await matching(session, rule) == ["c-1"]

    async def test_launched_within_days(self, session):
        for cid in ("c-1", "c-2", "c-3"):
            await customer(session, cid)
        await item(session, "NEW", days_ago(20))
        await item(session, "OLD", days_ago(400))
        await item(session, "UNDATED", None)
        await order(session, "o-1", "c-1", days_ago(5), lines=[("NEW", None)])  # 15 days after
        await order(session, "o-2", "c-2", days_ago(5), lines=[("OLD", None)])
        await order(session, "o-3", "c-3", days_ago(5), lines=[("UNDATED", None)])
        rule = {"orders": {"within_days": 30, "launched_within_days": 30}}
        assert await matching(session, rule) == ["c-1"]
        rule = {"orders": {"within_days": 30, "launched_within_days": 10}}
        assert await matching(session, rule) == []

    async def test_orders_of_merged_duplicates_count_for_the_root(self, session):
        await customer(session, "c-1")
        await customer(session, "c-1-dup", status="merged", root_external_id="c-1")
        await order(session, "o-1", "c-1", days_ago(1), customer_external_id="c-1-dup")
        assert await matching(session, {"orders": {"within_days": 7}}) == ["c-1"]


class TestEvents:
    async def test_count_over_days(self, session):
        today = NOW.date()
        for cid in ("c-1", "c-2", "c-3"):
            await customer(session, cid)
        await interactions(session, "c-1", today, "product_view", 1)
        await interactions(session, "c-1", today - timedelta(days=6), "product_view", 1)
        await interactions(session, "c-2", today - timedelta(days=7), "product_view", 5)  # 8th day
        await interactions(session, "c-3", today, "search", 4)
        rule = {"events": {"type": "product_view", "within_days": 7, "count": {"gte": 2}}}
        assert await matching(session, rule) == ["c-1"]
        rule = {"events": {"type": "product_view", "within_days": 8, "count": {"gte": 2}}}
        assert await matching(session, rule) == ["c-1", "c-2"]
        rule = {"events": {"type": "product_view", "within_days": 7, "count": {"eq": 0}}}
        assert await matching(session, rule) == ["c-2", "c-3"]
        assert await matching(session, {"events": {"type": "search", "within_days": 1}}) == ["c-3"]

    async def test_where_category_and_sku(self, session):
        today = NOW.date()
        await customer(session, "c-1")
        await customer(session, "c-2")
        await interactions(session, "c-1", today, "add_to_cart", 2, category="shoes", sku="S-1")
        await interactions(session, "c-1", today, "add_to_cart", 1, category="hats", sku="H-1")
        await interactions(session, "c-2", today, "add_to_cart", 1, category="shoes", sku="S-2")
        base = {"type": "add_to_cart", "within_days": 3}
        rule = {"events": {**base, "where": {"category": "shoes"}, "count": {"gte": 2}}}
        assert await matching(session, rule) == ["c-1"]
        rule = {"events": {**base, "where": {"sku": "S-2"}}}
        assert await matching(session, rule) == ["c-2"]
        rule = {"events": {**base, "count": {"eq": 3}}}
        assert await matching(session, rule) == ["c-1"]


class TestSegmentMembership:
    async def test_refers_to_materialised_members(self, session):
        await customer(session, "c-1")
        await customer(session, "c-2")
        vip = await segment(session, "vip")
        await member(session, vip.id, "c-2")
        assert await matching(session, {"segment": str(vip.id)}) == ["c-2"]
        assert await matching(session, {"not": {"segment": str(vip.id)}}) == ["c-1"]


class TestCompiledRule:
    def test_reports_windows_and_segments(self):
        ref = uuid.uuid4()
        rule = {
            "any": [
                {"orders": {"within_days": 30, "count": {"eq": 0}}},
                {"orders": {"within_days": 30, "sku": "X"}},
                {"events": {"type": "app_open", "within_days": 7}},
                {"not": {"segment": str(ref)}},
            ]
        }
        compiled = compile_rule(rule, now=NOW)
        assert compiled.windows == {("orders", 30), ("events", 7)}
        assert compiled.segments == {ref}

    def test_plain_rule_has_no_windows(self):
        compiled = compile_rule({"field": "country", "op": "eq", "value": "DE"}, now=NOW)
        assert compiled.windows == frozenset()
        assert compiled.segments == frozenset()

    def test_values_are_bound_parameters(self):
        compiled = compile_rule({"field": "city", "op": "eq", "value": "x' OR 1=1"}, now=NOW)
        sql = str(compiled.predicate.compile())
        assert "OR 1=1" not in sql
        assert "x'" not in sql

    def test_now_must_be_aware(self):
        with pytest.raises(ValueError, match="timezone"):
            compile_rule({"segment": str(uuid.uuid4())}, now=datetime(2026, 1, 1))
        assert compile_rule({"segment": str(uuid.uuid4())}, now=datetime(2026, 1, 1, tzinfo=UTC))
