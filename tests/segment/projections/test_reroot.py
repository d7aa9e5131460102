"""Merges and their undoing re-root every projection (``crm_segment.projections.reroot``)."""

from __future__ import annotations

from sqlalchemy import delete, select

from crm_segment.models import CustomerScore, EvaluationQueue
from crm_segment.projections.reroot import compute_roots, reroot
from tests.segment.consumers.samples import queued
from tests.segment.projections.conftest import (
    everywhere,
    merge,
    person,
    roots,
    scored,
    unmerge,
    with_data,
)


async def scores(session, *external_ids: str) -> set[str]:
    """Customers among ``external_ids`` with a score row."""
    stmt = select(CustomerScore.customer_external_id).where(
        CustomerScore.customer_external_id.in_(external_ids)
    )
    return set((await session.execute(stmt)).scalars())


class TestMerge:
    async def test_a_merge_moves_every_projection_to_the_survivor(self, session):
        s, d = person("rr-1s"), person("rr-1d")
        await with_data(session, s)
        await with_data(session, d)
        await scored(session, "rr-1s", "rr-1d")
        await session.execute(delete(EvaluationQueue))
        await merge(session, s, d, 10)
        assert await roots(session, "rr-1s", "rr-1d") == everywhere(
            {"rr-1s": "rr-1s", "rr-1d": "rr-1s"}
        )
        assert await scores(session, "rr-1s", "rr-1d") == {"rr-1s"}
        assert await queued(session) == {"rr-1s": "merge", "rr-1d": "merge"}

    async def test_a_chain_resolves_to_its_end_and_undoing_restores(self, session):
        a, b, c = person("rr-2a"), person("rr-2b"), person("rr-2c")
        for who in (a, b, c):
            await with_data(session, who)
        await merge(session, b, a, 10)  # A -> B
        await merge(session, c, b, 11)  # B -> C
        ids = ("rr-2a", "rr-2b", "rr-2c")
        assert await roots(session, *ids) == everywhere(dict.fromkeys(ids, "rr-2c"))
        await unmerge(session, c, b, 12)  # B is its own again, with A under it
        assert await roots(session, *ids) == everywhere(
            {"rr-2a": "rr-2b", "rr-2b": "rr-2b", "rr-2c": "rr-2c"}
        )
        await unmerge(session, b, a, 13)
        assert await roots(session, *ids) == everywhere({i: i for i in ids})

    async def test_merges_delivered_in_any_order_end_the_same(self, session):
        a, b, c = person("rr-3a"), person("rr-3b"), person("rr-3c")
        for who in (a, b, c):
            await with_data(session, who)
        await merge(session, c, b, 11)  # B -> C first
        await merge(session, b, a, 10)  # then the older A -> B
        await merge(session, c, b, 11)  # and a redelivery
        ids = ("rr-3a", "rr-3b", "rr-3c")
        assert await roots(session, *ids) == everywhere(dict.fromkeys(ids, "rr-3c"))

    async def test_an_undo_delivered_before_its_merge_leaves_them_apart(self, session):
        s, d = person("rr-4s"), person("rr-4d")
        for who in (s, d):
            await with_data(session, who)
        await unmerge(session, s, d, 20)
        await merge(session, s, d, 10)
        ids = ("rr-4s", "rr-4d")
        assert await roots(session, *ids) == everywhere({i: i for i in ids})

    async def test_facts_before_the_customer_is_known_follow_a_merge(self, session):
        s, d = person("rr-5s"), person("rr-5d")
        await with_data(session, d, known=False)  # orders etc. before the customer row
        await merge(session, s, d, 10)  # survivor unknown too
        # d has a stub row now; s has none, its projections are empty
        assert (await roots(session, "rr-5d"))["order"] == {"rr-5d": "rr-5s"}
        assert (await roots(session, "rr-5d"))["customer"] == {"rr-5d": "rr-5s"}

    async def test_facts_arriving_after_a_merge_count_for_the_survivor(self, session):
        s, d = person("rr-6s"), person("rr-6d")
        await with_data(session, s)
        await merge(session, s, d, 10)
        await with_data(session, d)
        ids = ("rr-6s", "rr-6d")
        assert await roots(session, *ids) == everywhere({"rr-6s": "rr-6s", "rr-6d": "rr-6s"})


class TestReroot:
    async def test_is_idempotent(self, session):
        a, b = person("rr-10a"), person("rr-10b")
        await with_data(session, a)
        await with_data(session, b)
        await merge(session, b, a, 10)
        before = await roots(session, "rr-10a", "rr-10b")
        assert await reroot(session, ["rr-10a", "rr-10b"]) == {
            "rr-10a": "rr-10b",
            "rr-10b": "rr-10b",
        }
        assert await roots(session, "rr-10a", "rr-10b") == before

    async def test_a_cycle_left_by_late_events_terminates(self, session):
        a, b = person("rr-11a"), person("rr-11b")
        await merge(session, b, a, 10)  # A -> B
        await merge(session, a, b, 11)  # B -> A (the undo of A -> B not delivered yet)
        found = await compute_roots(session, ["rr-11a"])
        assert set(found) == {"rr-11a", "rr-11b"}
        await unmerge(session, b, a, 12)  # the undo arrives: A is a root, B under it
        assert await compute_roots(session, ["rr-11a", "rr-11b"]) == {
            "rr-11a": "rr-11a",
            "rr-11b": "rr-11a",
        }

    async def test_nothing_to_do_for_no_seeds(self, session):
        assert await reroot(session, []) == {}
