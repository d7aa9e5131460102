"""Late events about an erased customer do not bring its data back; a later customer reusing
the external id is accepted.

The erasure of these tests happens at ``at(500)`` (``erased`` in the customer tests): an event
sent (``ce-time``) at or before that is late for it, one sent after it is about somebody new.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_loyalty.events import MEMBERSHIP_CHANGED, TIER_CHANGED
from crm_profile.events import (
    CONSENT_CHANGED,
    CUSTOMER_ERASED,
    INTERACTION_RECORDED,
    ORDER_PLACED,
    ORDER_REFUNDED,
    ORDER_STATUS_CHANGED,
    TAG_CHANGED,
)
from crm_segment.consumers.loyalty_events import on_membership_changed, on_tier_changed
from crm_segment.consumers.profile_consents import on_consent_changed
from crm_segment.consumers.profile_customers import on_profile_customer
from crm_segment.consumers.profile_interactions import on_interactions_recorded
from crm_segment.consumers.profile_orders import on_profile_order
from crm_segment.consumers.profile_tags import on_tag_changed
from crm_segment.customers import tombstones
from crm_segment.models import (
    CustomerConsent,
    CustomerLoyalty,
    CustomerTag,
    ErasedExternalId,
    InteractionDaily,
    Order,
    OrderLine,
)
from crm_segment.projections.errors import OrderNotProjectedYet
from tests.segment.conftest import at, envelope
from tests.segment.consumers.samples import (
    batch,
    consent,
    interaction,
    membership,
    placed,
    queued,
    refunded,
    status,
    tag,
    tier,
)
from tests.segment.consumers.test_profile_customers import erased
from tests.segment.projections.conftest import D, person, with_data

LATE, NEW = at(500), at(501)  # sent at the erasure (skipped), sent just after it (accepted)


def token() -> str:
    """A unique suffix: tombstones of other tests' ids never interfere."""
    return uuid.uuid4().hex[:8]


async def count(session: AsyncSession, model: type, external_id: str) -> int:
    """Rows of ``model`` about ``external_id``."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    stmt = select(func.count()).where(table.c.customer_external_id == external_id)
    return int((await session.execute(stmt)).scalar_one())


async def erase(session: AsyncSession, *people: tuple[str, uuid.UUID]) -> None:
    """Profile's erasure of ``people`` (at ``at(500)``), applied."""
    await on_profile_customer(session, envelope(CUSTOMER_ERASED, erased(*people), at(600)))


@pytest.fixture
async def gone(session: AsyncSession) -> str:
    """A customer with data everywhere, then erased; its external id."""
    who = person(f"late-{token()}")
    await with_data(session, who)
    await erase(session, who)
    return who[0]


class TestTombstones:
    async def test_erasure_keeps_digests_not_ids(self, session: AsyncSession):
        survivor, duplicate = person(f"ts-s-{token()}"), person(f"ts-d-{token()}")
        await with_data(session, survivor)
        await with_data(session, duplicate)
        await erase(session, survivor, duplicate)
        rows = (await session.execute(select(ErasedExternalId))).scalars().all()
        mine = {r.digest: r.erased_at for r in rows if r.erased_at == at(500)}
        for external_id, _ in (survivor, duplicate):
            key = hashlib.sha256(external_id.encode()).digest()
            assert tombstones.digest(external_id) == key
            assert mine[key] == at(500)
            assert external_id.encode() not in key
        sql_digest = select(func.sha256(func.convert_to(survivor[0], "UTF8")))
        assert (await session.execute(sql_digest)).scalar_one() == tombstones.digest(survivor[0])

    async def test_a_second_erasure_of_a_reused_id_moves_the_tombstone_forward(
        self, session: AsyncSession
    ):
        external_id = f"ts-r-{token()}"
        await erase(session, person(external_id))
        later = erased(person(external_id)).model_copy(update={"erased_at": at(900)})
        await on_profile_customer(session, envelope(CUSTOMER_ERASED, later, at(901)))
        # an older erasure delivered late changes nothing
        earlier = erased(person(external_id)).model_copy(update={"erased_at": at(100)})
        await on_profile_customer(session, envelope(CUSTOMER_ERASED, earlier, at(902)))
        stmt = select(ErasedExternalId.erased_at).where(
            ErasedExternalId.digest == tombstones.digest(external_id)
        )
        assert (await session.execute(stmt)).scalar_one() == at(900)
        assert await tombstones.erased_since(session, [external_id, None], at(900)) == {external_id}
        assert await tombstones.erased_since(session, [external_id], at(901)) == set()


class TestOrders:
    async def test_a_late_order_is_skipped_a_new_customers_order_is_taken(
        self, session: AsyncSession, gone: str
    ):
        order = placed(f"{gone}-o2", gone)
        await on_profile_order(session, envelope(ORDER_PLACED, order, LATE))
        assert await count(session, Order, gone) == 0
        lines = select(func.count()).where(OrderLine.order_external_id == f"{gone}-o2")
        assert (await session.execute(lines)).scalar_one() == 0
        assert gone not in await queued(session)

        await on_profile_order(session, envelope(ORDER_PLACED, order, NEW))
        assert await count(session, Order, gone) == 1
        assert (await session.execute(lines)).scalar_one() == 1
        assert (await queued(session))[gone] == "input"

    async def test_late_status_changes_and_refunds_are_skipped_not_retried(
        self, session: AsyncSession, gone: str
    ):
        order = f"{gone}-o1"  # placed before the erasure, deleted with it
        changed = status(order, gone, "shipped")
        await on_profile_order(session, envelope(ORDER_STATUS_CHANGED, changed, LATE))
        refund = refunded(order, gone, 1000, 1000, True)
        await on_profile_order(session, envelope(ORDER_REFUNDED, refund, LATE))
        assert await count(session, Order, gone) == 0
        assert gone not in await queued(session)
        # a new customer's status change before its order: retried until the order is placed
        with pytest.raises(OrderNotProjectedYet):
            await on_profile_order(session, envelope(ORDER_STATUS_CHANGED, changed, NEW))


class TestInteractions:
    async def test_the_erased_customers_part_of_a_late_batch_is_skipped(
        self, session: AsyncSession, gone: str
    ):
        other = f"late-other-{token()}"
        late = batch(interaction(gone, "product_view", D), interaction(other, "search", D))
        await on_interactions_recorded(session, envelope(INTERACTION_RECORDED, late, LATE))
        assert await count(session, InteractionDaily, gone) == 0
        assert await count(session, InteractionDaily, other) == 1
        assert set(await queued(session)) == {other}

        new = batch(interaction(gone, "product_view", D))
        await on_interactions_recorded(session, envelope(INTERACTION_RECORDED, new, NEW))
        assert await count(session, InteractionDaily, gone) == 1


class TestConsentsTagsLoyalty:
    async def test_a_late_consent_is_skipped(self, session: AsyncSession, gone: str):
        decision = consent(gone, "granted", at(400))
        await on_consent_changed(session, envelope(CONSENT_CHANGED, decision, LATE))
        assert await count(session, CustomerConsent, gone) == 0
        await on_consent_changed(session, envelope(CONSENT_CHANGED, decision, NEW))
        assert await count(session, CustomerConsent, gone) == 1

    async def test_a_late_manual_tag_is_skipped(self, session: AsyncSession, gone: str):
        added = tag(gone, "vip", "added")
        await on_tag_changed(session, envelope(TAG_CHANGED, added, LATE))
        assert await count(session, CustomerTag, gone) == 0
        await on_tag_changed(session, envelope(TAG_CHANGED, added, NEW))
        assert await count(session, CustomerTag, gone) == 1

    async def test_late_tier_and_membership_changes_are_skipped(
        self, session: AsyncSession, gone: str
    ):
        gold = tier(gone, "gold", at(400))
        plus = membership(gone, "active", at(400))
        await on_tier_changed(session, envelope(TIER_CHANGED, gold, LATE))
        await on_membership_changed(session, envelope(MEMBERSHIP_CHANGED, plus, LATE))
        assert await count(session, CustomerLoyalty, gone) == 0
        assert gone not in await queued(session)

        await on_tier_changed(session, envelope(TIER_CHANGED, gold, NEW))
        await on_membership_changed(session, envelope(MEMBERSHIP_CHANGED, plus, NEW))
        [row] = (
            await session.execute(
                select(CustomerLoyalty).where(CustomerLoyalty.customer_external_id == gone)
            )
        ).scalars()
        assert (row.tier, row.membership_status) == ("gold", "active")
