"""Loyalty's tier and membership events → ``customer_loyalty`` (sample events of the contract)."""

from __future__ import annotations

import uuid

from crm_loyalty.events import MEMBERSHIP_CHANGED, TIER_CHANGED
from crm_profile.events import CUSTOMER_CREATED, CUSTOMER_MERGED
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.consumers.loyalty_events import (
    MEMBERSHIPS,
    TIERS,
    on_membership_changed,
    on_tier_changed,
)
from crm_segment.consumers.profile_customers import on_profile_customer
from crm_segment.models import CustomerLoyalty
from tests.segment.conftest import at, envelope
from tests.segment.consumers.samples import fresh, membership, queued, tier
from tests.segment.consumers.test_profile_customers import customer, merged


async def loyalty(session, external_id: str) -> CustomerLoyalty | None:
    """The customer's loyalty row."""
    rows = await fresh(
        session, CustomerLoyalty, CustomerLoyalty.customer_external_id == external_id
    )
    return rows[0] if rows else None


class TestSubscriptions:
    def test_durables(self):
        assert (TIERS.subject, TIERS.durable, TIERS.stream) == (
            "crm.loyalty.tier.changed",
            "segment-loyalty-tiers",
            "CRM_LOYALTY",
        )
        assert (MEMBERSHIPS.subject, MEMBERSHIPS.durable) == (
            "crm.loyalty.membership.changed",
            "segment-loyalty-memberships",
        )
        assert {TIERS, MEMBERSHIPS} <= set(SUBSCRIPTIONS)


class TestTierChanged:
    async def test_the_latest_tier_wins(self, session):
        gold = envelope(TIER_CHANGED, tier("pl-1", "gold", at(10)), at(10))
        await on_tier_changed(session, gold)
        await on_tier_changed(
            session, envelope(TIER_CHANGED, tier("pl-1", "silver", at(5)), at(11))
        )
        await on_tier_changed(session, gold)
        row = await loyalty(session, "pl-1")
        assert row is not None
        assert (row.tier, row.tier_changed_at, row.root_external_id) == ("gold", at(10), "pl-1")
        assert row.membership_status is None
        assert await queued(session) == {"pl-1": "input"}


class TestMembershipChanged:
    async def test_membership_and_tier_live_side_by_side(self, session):
        await on_membership_changed(
            session,
            envelope(MEMBERSHIP_CHANGED, membership("pl-2", "active", at(1), at(600)), at(1)),
        )
        await on_tier_changed(session, envelope(TIER_CHANGED, tier("pl-2", "gold", at(2)), at(2)))
        await on_membership_changed(
            session, envelope(MEMBERSHIP_CHANGED, membership("pl-2", "cancelled", at(3)), at(3))
        )
        await on_membership_changed(  # late and older: ignored
            session,
            envelope(MEMBERSHIP_CHANGED, membership("pl-2", "active", at(2), at(900)), at(4)),
        )
        row = await loyalty(session, "pl-2")
        assert row is not None
        assert (row.tier, row.membership_status, row.membership_plan) == (
            "gold",
            "cancelled",
            "plus",
        )
        assert (row.membership_expires_at, row.membership_changed_at) == (None, at(3))

    async def test_counts_for_the_survivor(self, session):
        s, d = ("pl-3s", uuid.uuid4()), ("pl-3d", uuid.uuid4())
        await on_profile_customer(session, envelope(CUSTOMER_CREATED, customer(*s), at(0)))
        await on_profile_customer(session, envelope(CUSTOMER_MERGED, merged(s, d), at(1)))
        await on_membership_changed(
            session, envelope(MEMBERSHIP_CHANGED, membership("pl-3d", "active", at(2)), at(2))
        )
        row = await loyalty(session, "pl-3d")
        assert row is not None and row.root_external_id == "pl-3s"
