"""Profile's manual tags → ``customer_tag`` origin ``manual`` (``segment-profile-tags``)."""

from __future__ import annotations

from sqlalchemy import insert

from crm_profile.events import TAG_CHANGED
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.consumers.profile_tags import SUBSCRIPTION, on_tag_changed
from crm_segment.models import CustomerTag
from tests.segment.conftest import at, envelope
from tests.segment.consumers.samples import fresh, queued, tag

handle = on_tag_changed


async def tags(session, external_id: str) -> list[tuple[str, str]]:
    """``(tag, origin)`` of the customer's tags."""
    rows = await fresh(session, CustomerTag, CustomerTag.customer_external_id == external_id)
    return sorted((r.tag, r.origin) for r in rows)


class TestSubscription:
    def test_durable(self):
        assert (SUBSCRIPTION.subject, SUBSCRIPTION.durable) == (
            "crm.profile.tag.changed",
            "segment-profile-tags",
        )
        assert SUBSCRIPTION in SUBSCRIPTIONS


class TestTagChanged:
    async def test_added_then_removed(self, session):
        await handle(session, envelope(TAG_CHANGED, tag("pt-1", "vip", "added"), at(1)))
        await handle(session, envelope(TAG_CHANGED, tag("pt-1", "wholesale", "added"), at(2)))
        assert await tags(session, "pt-1") == [("vip", "manual"), ("wholesale", "manual")]
        assert await queued(session) == {"pt-1": "input"}
        await handle(session, envelope(TAG_CHANGED, tag("pt-1", "vip", "removed"), at(3)))
        assert await tags(session, "pt-1") == [("wholesale", "manual")]

    async def test_the_same_event_twice_changes_nothing(self, session):
        added = envelope(TAG_CHANGED, tag("pt-2", "vip", "added"), at(1))
        removed = envelope(TAG_CHANGED, tag("pt-2", "vip", "removed"), at(2))
        for event in (added, added, removed, removed):
            await handle(session, event)
        assert await tags(session, "pt-2") == []

    async def test_an_older_removal_arriving_late_keeps_the_newer_tag(self, session):
        await handle(session, envelope(TAG_CHANGED, tag("pt-3", "vip", "added"), at(9)))
        await handle(session, envelope(TAG_CHANGED, tag("pt-3", "vip", "removed"), at(5)))
        assert await tags(session, "pt-3") == [("vip", "manual")]

    async def test_a_removal_leaves_the_derived_tag_of_the_same_name(self, session):
        await session.execute(
            insert(CustomerTag).values(
                customer_external_id="pt-4",
                tag="vip",
                origin="segment",
                root_external_id="pt-4",
                changed_at=at(0),
            )
        )
        await handle(session, envelope(TAG_CHANGED, tag("pt-4", "vip", "added"), at(1)))
        await handle(session, envelope(TAG_CHANGED, tag("pt-4", "vip", "removed"), at(2)))
        assert await tags(session, "pt-4") == [("vip", "segment")]
