"""Derived tags from segment, applied by the tags service (the consumer's effect, without NATS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from crm_profile.models import CustomerTag, CustomerTagChange
from crm_profile.tags.service import apply_segment_change
from tests.profile.conftest import published, put_customer
from tests.profile.timeline.factories import customer_row, merge

T = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


async def segment_tags(session) -> list[tuple[str, str]]:
    """``(customer external id, tag)`` of every segment tag."""
    from crm_profile.models import Customer

    rows = await session.execute(
        select(Customer.external_id, CustomerTag.tag)
        .join(Customer, Customer.id == CustomerTag.customer_id)
        .where(CustomerTag.origin == "segment")
        .order_by(Customer.external_id, CustomerTag.tag)
    )
    return [tuple(r) for r in rows]


class TestApplySegmentChange:
    async def test_add_then_remove(self, client, session):
        await put_customer(client, "sg-1")
        assert await apply_segment_change(session, "sg-1", "churn_risk", "added", T) == "applied"
        assert await segment_tags(session) == [("sg-1", "churn_risk")]
        row = (await session.execute(select(CustomerTag))).scalar_one()
        assert row.created_at == T
        await apply_segment_change(session, "sg-1", "churn_risk", "removed", T + timedelta(hours=1))
        assert await segment_tags(session) == []
        # Derived tags are not re-announced by profile.
        assert await published(session, "crm.profile.tag.changed") == []

    async def test_adding_twice_keeps_one_tag(self, client, session):
        await put_customer(client, "sg-2")
        await apply_segment_change(session, "sg-2", "vip", "added", T)
        await apply_segment_change(session, "sg-2", "vip", "added", T + timedelta(minutes=1))
        assert await segment_tags(session) == [("sg-2", "vip")]

    async def test_an_older_report_arriving_late_changes_nothing(self, client, session):
        await put_customer(client, "sg-3")
        await apply_segment_change(session, "sg-3", "vip", "added", T)
        await apply_segment_change(session, "sg-3", "vip", "added", T + timedelta(hours=2))
        outcome = await apply_segment_change(
            session, "sg-3", "vip", "removed", T + timedelta(hours=1)
        )
        assert outcome == "stale"
        assert await segment_tags(session) == [("sg-3", "vip")]

    async def test_unknown_or_erased_customer_is_ignored(self, client, session):
        assert await apply_segment_change(session, "sg-nobody", "vip", "added", T) == "unknown"
        await put_customer(client, "sg-4")
        (await customer_row(session, "sg-4")).status = "erased"
        await session.flush()
        assert await apply_segment_change(session, "sg-4", "vip", "added", T) == "unknown"
        assert await segment_tags(session) == []
        assert (await session.execute(select(CustomerTagChange))).first() is None

    async def test_merged_duplicate_keeps_it_and_the_group_shows_it(self, client, session):
        await put_customer(client, "sg-5")
        await put_customer(client, "sg-5-dup")
        await merge(session, "sg-5", "sg-5-dup")
        await apply_segment_change(session, "sg-5-dup", "vip", "added", T)
        assert await segment_tags(session) == [("sg-5-dup", "vip")]
        listed = (await client.get("/v1/customers/sg-5/tags")).json()["items"]
        assert [(t["tag"], t["origin"]) for t in listed] == [("vip", "segment")]
        # A removal reported for the survivor clears it from the whole group.
        await apply_segment_change(session, "sg-5", "vip", "removed", T + timedelta(hours=1))
        assert await segment_tags(session) == []
