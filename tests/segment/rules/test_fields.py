"""Field conditions compiled to SQL and run on PostgreSQL: every field kind and operator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.segment.rules.factories import (
    NOW,
    consent,
    customer,
    loyalty,
    matching,
    order,
    score,
    tag,
)


def cond(field: str, op: str, value: object) -> dict[str, object]:
    return {"field": field, "op": op, "value": value}


class TestCustomerColumns:
    async def test_string_operators(self, session):
        await customer(session, "c-1", country="DE", city="Berlin")
        await customer(session, "c-2", country="FR", city="Paris")
        await customer(session, "c-3", country=None, city="100%_real")
        assert await matching(session, cond("country", "eq", "DE")) == ["c-1"]
        # a customer without the value matches no comparison, not even ne ...
        assert await matching(session, cond("country", "ne", "DE")) == ["c-2"]
        # ... so `not` is the exact complement
        assert await matching(session, {"not": cond("country", "eq", "DE")}) == ["c-2", "c-3"]
        assert await matching(session, cond("country", "in", ["DE", "FR"])) == ["c-1", "c-2"]
        assert await matching(session, cond("country", "not_in", ["DE"])) == ["c-2"]
        assert await matching(session, cond("country", "exists", True)) == ["c-1", "c-2"]
        assert await matching(session, cond("country", "exists", False)) == ["c-3"]
        assert await matching(session, cond("city", "contains", "ERL")) == ["c-1"]

    async def test_contains_treats_like_wildcards_literally(self, session):
        await customer(session, "c-1", city="100%_real")
        await customer(session, "c-2", city="1000 real")
        assert await matching(session, cond("city", "contains", "%_")) == ["c-1"]
        assert await matching(session, cond("city", "contains", "0%")) == ["c-1"]

    async def test_only_active_roots_are_considered(self, session):
        await customer(session, "c-1", country="DE")
        await customer(session, "c-2", country="DE", status="merged", root_external_id="c-1")
        assert await matching(session, cond("country", "eq", "DE")) == ["c-1"]

    async def test_birthday_month_and_registered_at(self, session):
        await customer(
            session, "c-1", birthday_month=3, registered_at=datetime(2025, 1, 5, tzinfo=UTC)
        )
        await customer(
            session, "c-2", birthday_month=11, registered_at=datetime(2026, 6, 1, tzinfo=UTC)
        )
        await customer(session, "c-3")
        assert await matching(session, cond("birthday_month", "between", [1, 6])) == ["c-1"]
        assert await matching(session, cond("birthday_month", "in", [11, 12])) == ["c-2"]
        assert await matching(session, cond("registered_at", "gte", "2026-01-01")) == ["c-2"]
        assert (
            await matching(session, cond("registered_at", "lt", "2025-01-05T01:00:00+02:00")) == []
        )
        assert await matching(
            session, cond("registered_at", "between", ["2025-01-01T00:00:00Z", "2025-12-31"])
        ) == ["c-1"]
        assert await matching(session, cond("registered_at", "exists", False)) == ["c-3"]


class TestAttributes:
    async def test_number_vs_text(self, session):
        await customer(session, "c-1", attributes={"shoe_size": 42, "plan": "gold"})
        await customer(session, "c-2", attributes={"shoe_size": "42", "plan": "silver"})
        await customer(session, "c-3", attributes={"shoe_size": 9.5})
        await customer(session, "c-4", attributes={"shoe_size": None})
        assert await matching(session, cond("attributes.shoe_size", "eq", 42)) == ["c-1"]
        assert await matching(session, cond("attributes.shoe_size", "eq", "42")) == ["c-2"]
        # numeric order, not text order ("9.5" > "42" as text)
        assert await matching(session, cond("attributes.shoe_size", "lt", 10)) == ["c-3"]
        assert await matching(session, cond("attributes.shoe_size", "between", [9, 42.5])) == [
            "c-1",
            "c-3",
        ]
        assert await matching(session, cond("attributes.shoe_size", "in", [42, 43])) == ["c-1"]
        assert await matching(session, cond("attributes.plan", "not_in", ["gold"])) == ["c-2"]
        assert await matching(session, cond("attributes.plan", "contains", "ILV")) == ["c-2"]
        assert await matching(session, cond("attributes.shoe_size", "exists", True)) == [
            "c-1",
            "c-2",
            "c-3",
        ]
        assert await matching(session, cond("attributes.shoe_size", "exists", False)) == ["c-4"]

    async def test_booleans_and_arrays(self, session):
        await customer(session, "c-1", attributes={"b2b": True, "interests": ["running", "yoga"]})
        await customer(session, "c-2", attributes={"b2b": False, "interests": ["chess"]})
        await customer(session, "c-3", attributes={"b2b": "true"})
        assert await matching(session, cond("attributes.b2b", "eq", True)) == ["c-1"]
        assert await matching(session, cond("attributes.b2b", "ne", True)) == ["c-2"]
        assert await matching(session, cond("attributes.interests", "contains", "yoga")) == ["c-1"]

    async def test_key_is_a_bound_parameter(self, session):
        await customer(session, "c-1", attributes={"a-b:c": "x"})
        assert await matching(session, cond("attributes.a-b:c", "eq", "x")) == ["c-1"]


class TestTags:
    async def test_tag_operators(self, session):
        for cid in ("c-1", "c-2", "c-3"):
            await customer(session, cid)
        await tag(session, "c-1", "vip")
        await tag(session, "c-1", "newsletter", origin="segment")
        await tag(session, "c-2", "wholesale")
        assert await matching(session, cond("tags", "contains", "vip")) == ["c-1"]
        assert await matching(session, {"not": cond("tags", "contains", "vip")}) == ["c-2", "c-3"]
        assert await matching(session, cond("tags", "in", ["vip", "wholesale"])) == ["c-1", "c-2"]
        assert await matching(session, cond("tags", "not_in", ["vip"])) == ["c-2", "c-3"]
        assert await matching(session, cond("tags", "exists", True)) == ["c-1", "c-2"]
        assert await matching(session, cond("tags", "exists", False)) == ["c-3"]


class TestConsent:
    async def test_latest_decision_wins(self, session):
        for cid in ("c-1", "c-2", "c-3"):
            await customer(session, cid)
        await consent(session, "c-1", "email", "marketing", "granted")
        # c-2 has two rows (its own and a merged duplicate's); the newer decision counts
        await consent(session, "c-2", "email", "marketing", "granted", NOW - timedelta(days=2))
        await consent(session, "c-2", "email", "marketing", "denied", NOW, arrived_as="c-2-dup")
        await consent(session, "c-3", "sms", "marketing", "granted")
        field = "consent.email.marketing"
        assert await matching(session, cond(field, "eq", "granted")) == ["c-1"]
        assert await matching(session, cond(field, "ne", "granted")) == ["c-2"]
        assert await matching(session, cond(field, "exists", False)) == ["c-3"]
        assert await matching(session, cond("consent.sms.marketing", "in", ["granted"])) == ["c-3"]


class TestScores:
    async def test_rfm_and_predictions(self, session):
        cluster = uuid.uuid4()
        await customer(session, "c-1")
        await customer(session, "c-2")
        await customer(session, "c-3")  # no score row at all
        await score(
            session,
            "c-1",
            recency_days=3,
            frequency=9,
            monetary_minor=90000,
            r=5,
            f=5,
            m=4,
            rfm_score="554",
            rfm_group="champions",
            lifecycle="active",
            p_alive=0.95,
            churn_probability=0.05,
            expected_purchases_90d=2.5,
            clv_12m_minor=120000,
            value_score=88,
            cluster_id=cluster,
            orders_count=9,
            revenue_minor=90000,
            first_order_at=datetime(2024, 1, 1, tzinfo=UTC),
            last_order_at=NOW - timedelta(days=3),
        )
        await score(
            session,
            "c-2",
            recency_days=200,
            frequency=1,
            r=1,
            f=1,
            m=1,
            rfm_score="111",
            rfm_group="hibernating",
            lifecycle="dormant",
            p_alive=0.2,
            churn_probability=0.8,
            value_score=10,
            orders_count=1,
            revenue_minor=500,
        )
        assert await matching(session, cond("rfm.group", "eq", "champions")) == ["c-1"]
        assert await matching(session, cond("rfm.group", "ne", "champions")) == ["c-2"]
        assert await matching(session, cond("rfm.r", "gte", 4)) == ["c-1"]
        assert await matching(session, cond("rfm.score", "eq", "111")) == ["c-2"]
        assert await matching(session, cond("rfm.recency_days", "gt", 100)) == ["c-2"]
        assert await matching(session, cond("rfm.frequency", "lte", 1)) == ["c-2"]
        assert await matching(session, cond("rfm.monetary_minor", "exists", False)) == [
            "c-2",
            "c-3",
        ]
        assert await matching(session, cond("lifecycle", "in", ["dormant", "churned"])) == ["c-2"]
        assert await matching(session, cond("churn_probability", "gt", 0.5)) == ["c-2"]
        assert await matching(session, cond("p_alive", "between", [0.9, 1])) == ["c-1"]
        assert await matching(session, cond("expected_purchases_90d", "gte", 1)) == ["c-1"]
        assert await matching(session, cond("clv_12m_minor", "gt", 100000)) == ["c-1"]
        assert await matching(session, cond("value_score", "lt", 50)) == ["c-2"]
        assert await matching(session, cond("cluster_id", "eq", str(cluster))) == ["c-1"]
        assert await matching(session, cond("orders_count", "eq", 1)) == ["c-2"]
        assert await matching(session, cond("revenue_minor", "gte", 1000)) == ["c-1"]
        assert await matching(session, cond("first_order_at", "lt", "2025-01-01")) == ["c-1"]
        assert await matching(session, cond("last_order_at", "exists", True)) == ["c-1"]
        assert await matching(session, {"not": cond("value_score", "exists", True)}) == ["c-3"]

    async def test_recency_is_as_of_the_latest_batch(self, session):
        # a row the batch did not rewrite (only its recency moved) reads 5 days older
        from datetime import date

        from crm_segment.models import RfmBoundaries

        await customer(session, "c-1")
        await customer(session, "c-2")
        await score(session, "c-1", recency_days=10, rfm_as_of=date(2026, 11, 20))
        await score(session, "c-2", recency_days=12, rfm_as_of=date(2026, 11, 25))
        session.add(
            RfmBoundaries(
                id=1,
                as_of=date(2026, 11, 25),
                window_days=365,
                method="quantile",
                boundaries={},
                customers=2,
            )
        )
        await session.flush()
        assert await matching(session, cond("rfm.recency_days", "eq", 15)) == ["c-1"]
        assert await matching(session, cond("rfm.recency_days", "gte", 12)) == ["c-1", "c-2"]


class TestDiscountShareAndLoyalty:
    async def test_discount_share(self, session):
        for cid in ("c-1", "c-2", "c-3"):
            await customer(session, cid)
        day = NOW - timedelta(days=10)
        await order(session, "o-1", "c-1", day, discount_minor=100)
        await order(session, "o-2", "c-1", day, coupon_codes=["WELCOME"])
        await order(session, "o-3", "c-1", day)
        await order(session, "o-4", "c-1", day, status="cancelled", discount_minor=5)
        await order(session, "o-5", "c-2", day)
        assert await matching(session, cond("discount_share", "gte", 0.6)) == ["c-1"]
        assert await matching(session, cond("discount_share", "eq", 0)) == ["c-2"]
        assert await matching(session, cond("discount_share", "exists", False)) == ["c-3"]

    async def test_tier_and_membership(self, session):
        for cid in ("c-1", "c-2", "c-3"):
            await customer(session, cid)
        await loyalty(session, "c-1", tier="gold", membership_status="active")
        await loyalty(session, "c-2", tier="silver", membership_status="expired")
        assert await matching(session, cond("tier", "eq", "gold")) == ["c-1"]
        assert await matching(session, cond("tier", "contains", "IL")) == ["c-2"]
        assert await matching(session, cond("membership.status", "ne", "active")) == ["c-2"]
        assert await matching(session, cond("membership.status", "exists", False)) == ["c-3"]


class TestCombinators:
    async def test_all_any_not(self, session):
        await customer(session, "c-1", country="DE", birthday_month=1)
        await customer(session, "c-2", country="DE", birthday_month=7)
        await customer(session, "c-3", country="FR", birthday_month=1)
        de = cond("country", "eq", "DE")
        january = cond("birthday_month", "eq", 1)
        assert await matching(session, {"all": [de, january]}) == ["c-1"]
        assert await matching(session, {"any": [de, january]}) == ["c-1", "c-2", "c-3"]
        assert await matching(session, {"all": [de, {"not": january}]}) == ["c-2"]
        assert await matching(session, {"not": {"any": [de, january]}}) == []


class TestRangesAndBigValues:
    async def test_attribute_strings_between_and_big_numbers(self, session):
        await customer(session, "c-1", attributes={"since": "2025-03-01", "points": 10**20})
        await customer(session, "c-2", attributes={"since": "2026-03-01", "points": 5})
        rule = cond("attributes.since", "between", ["2025-01-01", "2025-12-31"])
        assert await matching(session, rule) == ["c-1"]
        assert await matching(session, cond("attributes.points", "gt", 10**19)) == ["c-1"]
        assert await matching(session, cond("attributes.points", "lt", 1e300)) == ["c-1", "c-2"]

    async def test_integer_fields_accept_their_column_range(self, session):
        await customer(session, "c-1")
        await score(session, "c-1", orders_count=3, clv_12m_minor=2**40)
        assert await matching(session, cond("orders_count", "lt", 2**31 - 1)) == ["c-1"]
        assert await matching(session, cond("clv_12m_minor", "gte", 2**40)) == ["c-1"]
