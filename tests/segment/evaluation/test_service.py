"""The evaluator: entries and exits written and published once, tags, merges, schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_profile.events import ORDER_PLACED
from crm_segment.builtins import ensure_builtin_segments
from crm_segment.config import settings
from crm_segment.consumers.profile_orders import on_profile_order
from crm_segment.evaluation import queue
from crm_segment.evaluation.service import (
    evaluate_customers,
    evaluate_segment_full,
    retire_segment,
)
from crm_segment.models import Customer, EvaluationQueue, Segment, SegmentMember
from tests.segment.conftest import at, envelope, published
from tests.segment.consumers.samples import placed
from tests.segment.evaluation.factories import (
    changes,
    count_of,
    customer,
    derived_tags,
    due,
    interactions,
    members,
    order,
    segment,
    tag_changes,
    token,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GERMANS = {"field": "country", "op": "eq", "value": "DE"}


class TestEntriesAndExits:
    async def test_entry_and_exit_are_written_and_published_once(self, session: AsyncSession):
        de, fr = f"de-{token()}", f"fr-{token()}"
        await customer(session, de, country="DE")
        await customer(session, fr, country="FR")
        seg = await segment(session, GERMANS)

        result = await evaluate_customers(session, [de, fr], NOW)
        assert (result.entered, result.exited) == (1, 0)
        assert await members(session, seg.id) == [de]
        assert await changes(session, seg.id) == [(de, "entered")]
        assert await count_of(session, seg.id) == 1

        again = await evaluate_customers(session, [de, fr, de], NOW + timedelta(minutes=1))
        assert (again.entered, again.exited) == (0, 0)
        assert await changes(session, seg.id) == [(de, "entered")]  # nothing new

        await session.execute(
            update(Customer).where(Customer.customer_external_id == de).values(country="FR")
        )
        await evaluate_customers(session, [de], NOW + timedelta(minutes=2))
        await evaluate_customers(session, [de], NOW + timedelta(minutes=3))
        assert await members(session, seg.id) == []
        assert await changes(session, seg.id) == [(de, "entered"), (de, "exited")]
        assert await count_of(session, seg.id) == 0

    async def test_event_payload_names_the_segment(self, session: AsyncSession):
        de = f"de-{token()}"
        await customer(session, de)
        seg = await segment(session, GERMANS, name=f"Germans {token()}")
        await evaluate_customers(session, [de], NOW)
        (event,) = [
            e
            for e in await published(session, "crm.segment.membership.changed")
            if e["segment_id"] == str(seg.id)
        ]
        assert event == {
            "segment_id": str(seg.id),
            "segment_name": seg.name,
            "segment_kind": "rule",
            "customer_external_id": de,
            "change": "entered",
            "changed_at": "2026-11-01T12:00:00Z",
            "_subject_id": de,
        }

    async def test_segments_not_yet_materialised_or_disabled_are_left_alone(
        self, session: AsyncSession
    ):
        de = f"de-{token()}"
        await customer(session, de)
        pending = await segment(session, GERMANS, materialised=False)
        disabled = await segment(session, GERMANS, enabled=False)
        await evaluate_customers(session, [de], NOW)
        assert await members(session, pending.id) == []
        assert await members(session, disabled.id) == []

    async def test_a_segment_on_another_is_evaluated_after_it_in_the_same_pass(
        self, session: AsyncSession
    ):
        de = f"de-{token()}"
        await customer(session, de)
        base = await segment(session, GERMANS)
        # created first, so only the dependency order puts it after ``base``
        on_top = await segment(session, {"segment": str(base.id)})
        await session.execute(
            update(Segment)
            .where(Segment.id == on_top.id)
            .values(created_at=NOW - timedelta(days=1))
        )
        await evaluate_customers(session, [de], NOW)
        assert await members(session, base.id) == [de]
        assert await members(session, on_top.id) == [de]

    async def test_an_unknown_customer_is_ignored(self, session: AsyncSession):
        seg = await segment(session, GERMANS)
        result = await evaluate_customers(session, [f"nobody-{token()}"], NOW)
        assert (result.entered, result.exited) == (0, 0)
        assert await changes(session, seg.id) == []


class TestMerges:
    async def test_a_merged_customer_exits_every_segment(self, session: AsyncSession):
        dup, survivor = f"dup-{token()}", f"surv-{token()}"
        await customer(session, dup)
        await customer(session, survivor)
        first = await segment(session, GERMANS)
        second = await segment(session, {"not": {"field": "country", "op": "eq", "value": "FR"}})
        await evaluate_customers(session, [dup, survivor], NOW)
        assert await members(session, first.id) == sorted([dup, survivor])

        await session.execute(
            update(Customer)
            .where(Customer.customer_external_id == dup)
            .values(status="merged", merged_into_external_id=survivor, root_external_id=survivor)
        )
        await evaluate_customers(session, [dup, survivor], NOW + timedelta(minutes=1))
        for seg in (first, second):
            assert await members(session, seg.id) == [survivor]
            assert await changes(session, seg.id) == sorted(
                [(dup, "entered"), (survivor, "entered")]
            ) + [(dup, "exited")]
            assert await count_of(session, seg.id) == 1


class TestTagRules:
    async def test_entry_adds_the_tag_and_exit_removes_it(self, session: AsyncSession):
        de = f"de-{token()}"
        tag = f"t_{token()}"
        await customer(session, de)
        seg = await segment(session, GERMANS, kind="tag", tag=tag)
        await evaluate_customers(session, [de], NOW)
        assert await derived_tags(session, tag) == [de]
        assert await tag_changes(session, tag) == [(de, "added")]
        assert await changes(session, seg.id) == [(de, "entered")]

        await evaluate_customers(session, [de], NOW)
        assert await tag_changes(session, tag) == [(de, "added")]

        await session.execute(
            update(Customer).where(Customer.customer_external_id == de).values(country="AT")
        )
        await evaluate_customers(session, [de], NOW + timedelta(minutes=1))
        assert await derived_tags(session, tag) == []
        assert await tag_changes(session, tag) == [(de, "added"), (de, "removed")]

    async def test_a_rule_on_tags_sees_derived_tags(self, session: AsyncSession):
        de = f"de-{token()}"
        tag = f"t_{token()}"
        await customer(session, de)
        await segment(session, GERMANS, kind="tag", tag=tag)
        await evaluate_customers(session, [de], NOW)
        tagged = await segment(session, {"field": "tags", "op": "contains", "value": tag})
        await evaluate_customers(session, [de], NOW)
        assert await members(session, tagged.id) == [de]


class TestScheduling:
    async def test_no_order_in_30_days_is_due_when_the_last_order_leaves_the_window(
        self, session: AsyncSession
    ):
        buyer = f"b-{token()}"
        await customer(session, buyer)
        placed = NOW - timedelta(days=10, hours=3, seconds=7)
        await order(session, buyer, placed)
        lapsed = await segment(session, {"orders": {"within_days": 30, "count": {"eq": 0}}})
        await evaluate_customers(session, [buyer], NOW)
        assert await members(session, lapsed.id) == []
        moment = placed + timedelta(days=30)
        assert await due(session, buyer) == moment

        await evaluate_customers(session, [buyer], moment - timedelta(microseconds=1))
        assert await members(session, lapsed.id) == []
        await evaluate_customers(session, [buyer], moment)
        assert await members(session, lapsed.id) == [buyer]
        assert await changes(session, lapsed.id) == [(buyer, "entered")]

    async def test_viewed_twice_in_7_days_is_due_when_the_older_view_leaves(
        self, session: AsyncSession
    ):
        viewer = f"v-{token()}"
        await customer(session, viewer)
        first, second = NOW.date() - timedelta(days=3), NOW.date() - timedelta(days=1)
        await interactions(session, viewer, first, "product_view", 1, NOW - timedelta(days=3))
        await interactions(session, viewer, second, "product_view", 1, NOW - timedelta(days=1))
        keen = await segment(
            session, {"events": {"type": "product_view", "within_days": 7, "count": {"gte": 2}}}
        )
        await evaluate_customers(session, [viewer], NOW)
        assert await members(session, keen.id) == [viewer]
        # the view of ``first`` counts through the UTC day first + 6, and no longer after it
        moment = datetime.combine(first + timedelta(days=7), datetime.min.time(), UTC)
        assert await due(session, viewer) == moment

        await evaluate_customers(session, [viewer], moment - timedelta(microseconds=1))
        assert await members(session, keen.id) == [viewer]
        await session.execute(delete(EvaluationQueue))  # the worker takes the row first
        await evaluate_customers(session, [viewer], moment)
        assert await members(session, keen.id) == []
        assert await changes(session, keen.id) == [(viewer, "entered"), (viewer, "exited")]
        # the remaining view leaves its window later still: due again then
        assert await due(session, viewer) == datetime.combine(
            second + timedelta(days=7), datetime.min.time(), UTC
        )

    async def test_an_earlier_queued_time_wins(self, session: AsyncSession):
        buyer = f"b-{token()}"
        await customer(session, buyer)
        await order(session, buyer, NOW - timedelta(days=1))
        await segment(session, {"orders": {"within_days": 30, "count": {"gte": 1}}})
        await queue.enqueue(session, [buyer], NOW + timedelta(hours=1))
        await evaluate_customers(session, [buyer], NOW)
        assert await due(session, buyer) == NOW + timedelta(hours=1)

    async def test_without_windows_only_the_lifecycle_change_is_scheduled(
        self, session: AsyncSession
    ):
        de, browser = f"de-{token()}", f"de-{token()}"
        await customer(session, de)
        await customer(session, browser)  # no order: no score row, no stage to change
        placed = NOW - timedelta(days=1)
        await order(session, de, placed)
        await segment(session, GERMANS)
        result = await evaluate_customers(session, [de, browser], NOW)
        assert result.scheduled == 1
        # one order: ``new`` until lifecycle_new_days have passed, then ``active``
        assert await due(session, de) == placed + timedelta(
            days=settings.lifecycle_new_days, seconds=1
        )
        assert await due(session, browser) is None

    async def test_a_window_earlier_than_the_lifecycle_change_wins(self, session: AsyncSession):
        buyer = f"b-{token()}"
        await customer(session, buyer)
        placed = NOW - timedelta(days=1)
        await order(session, buyer, placed)
        await segment(session, {"orders": {"within_days": 7, "count": {"gte": 1}}})
        await evaluate_customers(session, [buyer], NOW)
        assert await due(session, buyer) == placed + timedelta(days=7)


class TestLifecycleScheduling:
    async def _builtin_stage_segments(self, session: AsyncSession) -> dict[str, Segment]:
        """The built-in lifecycle segments, materialised (empty) in this transaction."""
        await ensure_builtin_segments(session)
        lifecycle = select(Segment.id).where(Segment.kind == "lifecycle")
        await session.execute(delete(SegmentMember).where(SegmentMember.segment_id.in_(lifecycle)))
        await session.execute(
            update(Segment)
            .where(Segment.kind == "lifecycle", Segment.deleted_at.is_(None))
            .values(enabled=True, evaluated_version=Segment.version, members_count=0)
        )
        rows = await session.execute(
            select(Segment)
            .where(Segment.kind == "lifecycle", Segment.deleted_at.is_(None))
            .execution_options(populate_existing=True)
        )
        return {s.key: s for s in rows.scalars() if s.key is not None}

    async def test_active_customer_is_due_when_at_risk_and_moves_segment_then(
        self, session: AsyncSession
    ):
        stages = await self._builtin_stage_segments(session)
        buyer = f"b-{token()}"
        await customer(session, buyer)
        first, last = NOW - timedelta(days=40), NOW - timedelta(days=20)
        await order(session, buyer, first)
        await order(session, buyer, last)
        await evaluate_customers(session, [buyer], NOW)
        assert await members(session, stages["active"].id) == [buyer]
        # mean interval 20 days, rhythm factor 2: at risk 40 days after the last order
        gap = max(
            timedelta(days=settings.lifecycle_at_risk_min_days),
            settings.lifecycle_rhythm_factor * (last - first),
        )
        assert gap < timedelta(days=settings.lifecycle_dormant_days)
        moment = last + gap + timedelta(seconds=1)
        assert await due(session, buyer) == moment

        await session.execute(delete(EvaluationQueue))  # the worker takes the row first
        await evaluate_customers(session, [buyer], moment - timedelta(seconds=1))
        assert await members(session, stages["active"].id) == [buyer]
        assert await due(session, buyer) == moment  # still ahead: scheduled again

        await session.execute(delete(EvaluationQueue))
        await evaluate_customers(session, [buyer], moment)
        assert await members(session, stages["active"].id) == []
        assert await members(session, stages["at_risk"].id) == [buyer]
        assert await changes(session, stages["active"].id) == [
            (buyer, "entered"),
            (buyer, "exited"),
        ]
        assert await changes(session, stages["at_risk"].id) == [(buyer, "entered")]
        # next: dormant, lifecycle_dormant_days after the last order
        assert await due(session, buyer) == last + timedelta(
            days=settings.lifecycle_dormant_days, seconds=1
        )

        await evaluate_customers(session, [buyer], moment + timedelta(hours=1))  # nothing new
        assert await changes(session, stages["at_risk"].id) == [(buyer, "entered")]
        assert await changes(session, stages["active"].id) == [
            (buyer, "entered"),
            (buyer, "exited"),
        ]


class TestFullEvaluation:
    async def test_new_segment_is_materialised_with_events(self, session: AsyncSession):
        a, b, c = (f"{p}-{token()}" for p in "abc")
        await customer(session, a)
        await customer(session, b)
        await customer(session, c, country="FR")
        seg = await segment(session, GERMANS, materialised=False)
        entered, exited = await evaluate_segment_full(session, seg, NOW)
        assert (sorted(entered), exited) == (sorted([a, b]), [])
        assert await members(session, seg.id) == sorted([a, b])
        assert (seg.evaluated_version, seg.members_count, seg.evaluated_at) == (1, 2, NOW)
        assert sorted(await changes(session, seg.id)) == sorted([(a, "entered"), (b, "entered")])

    async def test_drift_is_corrected_once(self, session: AsyncSession):
        a, b = f"a-{token()}", f"b-{token()}"
        await customer(session, a)
        await customer(session, b, country="FR")
        seg = await segment(session, GERMANS)
        await evaluate_customers(session, [a, b], NOW)
        # drift: a member lost by hand, a stranger added by hand
        await session.execute(delete(SegmentMember).where(SegmentMember.segment_id == seg.id))
        session.add(SegmentMember(segment_id=seg.id, customer_external_id=b))
        await session.flush()

        assert await evaluate_segment_full(session, seg, NOW) == ([a], [b])
        assert await evaluate_segment_full(session, seg, NOW) == ([], [])
        assert await changes(session, seg.id) == [(a, "entered"), (a, "entered"), (b, "exited")]
        assert await members(session, seg.id) == [a]

    async def test_segment_rules_about_other_segments_do_not_see_the_deleted_rows(
        self, session: AsyncSession
    ):
        a = f"a-{token()}"
        await customer(session, a)
        base = await segment(session, GERMANS)
        await evaluate_customers(session, [a], NOW)
        # members of ``base`` who are not German: nobody, so ``a`` must exit
        odd = await segment(
            session,
            {"all": [{"segment": str(base.id)}, {"not": GERMANS}]},
        )
        session.add(SegmentMember(segment_id=odd.id, customer_external_id=a))
        await session.flush()
        assert await evaluate_segment_full(session, odd, NOW) == ([], [a])

    async def test_disabled_and_retired_segments_are_emptied(self, session: AsyncSession):
        a = f"a-{token()}"
        tag = f"t_{token()}"
        await customer(session, a)
        seg = await segment(session, GERMANS, kind="tag", tag=tag)
        await evaluate_customers(session, [a], NOW)
        assert await derived_tags(session, tag) == [a]

        assert await retire_segment(session, seg, NOW) == [a]
        assert seg.deleted_at == NOW and seg.members_count == 0
        assert await members(session, seg.id) == []
        assert await derived_tags(session, tag) == []
        assert await tag_changes(session, tag) == [(a, "added"), (a, "removed")]
        assert await changes(session, seg.id) == [(a, "entered"), (a, "exited")]


class TestRedelivery:
    async def test_a_redelivered_order_gives_one_entry(self, session: AsyncSession):
        buyer = f"b-{token()}"
        await customer(session, buyer)
        recent = await segment(session, {"orders": {"within_days": 30, "count": {"gte": 1}}})
        event = envelope(ORDER_PLACED, placed(f"o-{token()}", buyer), at(0))
        for _ in range(2):  # the same message delivered twice, each time evaluated
            await on_profile_order(session, event)
            assert await due(session, buyer) is not None
            await session.execute(delete(EvaluationQueue))  # what the worker takes
            await evaluate_customers(session, [buyer], at(60))
        assert await changes(session, recent.id) == [(buyer, "entered")]
        assert await due(session, buyer) == at(0) + timedelta(days=30)
