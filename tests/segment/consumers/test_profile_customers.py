"""Profile's customer events → segment's customer projection (``segment-profile-customers``)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import orjson
import pytest
from sqlalchemy import delete, func, insert, select

from crm_profile.events import (
    CUSTOMER_CREATED,
    CUSTOMER_ERASED,
    CUSTOMER_MERGED,
    CUSTOMER_UNMERGED,
    CUSTOMER_UPDATED,
    CustomerErasedV1,
    CustomerMergedV1,
    CustomerUnmergedV1,
    CustomerV1,
)
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.consumers.profile_customers import SUBSCRIPTION, on_profile_customer
from crm_segment.models import Customer, ErasedCustomer, dead_letter_table
from tests.segment.conftest import at, envelope, projected

handle = on_profile_customer


def customer(external_id: str, customer_id: uuid.UUID | None = None, **fields: Any) -> CustomerV1:
    """Profile's payload of a customer with ``fields`` set."""
    values: dict[str, Any] = {
        "email": f"{external_id}@example.com",
        "phone": "+442079460958",
        "first_name": "Ana",
        "last_name": "Silva",
        "birthday": date(1990, 4, 2),
        "gender": "female",
        "timezone": "Europe/Lisbon",
        "locale": "pt-PT",
        "country": "PT",
        "city": "Porto",
        "registered_at": at(-1000),
        "source_channel": "app",
        "attributes": {},
        "changed_fields": [],
    }
    values.update(fields)
    return CustomerV1(
        customer_id=str(customer_id or uuid.uuid4()), customer_external_id=external_id, **values
    )


def merged(survivor: tuple[str, uuid.UUID], duplicate: tuple[str, uuid.UUID]) -> CustomerMergedV1:
    """Profile's payload of ``duplicate`` folded into ``survivor``."""
    return CustomerMergedV1(
        merge_id=str(uuid.uuid4()),
        survivor_id=str(survivor[1]),
        survivor_external_id=survivor[0],
        duplicate_id=str(duplicate[1]),
        duplicate_external_id=duplicate[0],
        rule="manual",
    )


def unmerged(survivor: tuple[str, uuid.UUID], duplicate: tuple[str, uuid.UUID]):
    """Profile's payload of the merge of ``duplicate`` into ``survivor`` being undone."""
    return CustomerUnmergedV1(
        merge_id=str(uuid.uuid4()),
        survivor_id=str(survivor[1]),
        survivor_external_id=survivor[0],
        duplicate_id=str(duplicate[1]),
        duplicate_external_id=duplicate[0],
    )


def erased(*people: tuple[str, uuid.UUID], with_ids: bool = True) -> CustomerErasedV1:
    """Profile's payload of an erasure of ``people`` (the survivor first)."""
    return CustomerErasedV1(
        customer_id=str(people[0][1]),
        customer_external_id=people[0][0],
        erased_external_ids=[p[0] for p in people],
        erased_customer_ids=[str(p[1]) for p in people] if with_ids else [],
        erased_at=at(500),
    )


class TestSubscription:
    def test_one_durable_for_every_customer_event(self):
        assert (SUBSCRIPTION.subject, SUBSCRIPTION.durable) == (
            "crm.profile.customer.>",
            "segment-profile-customers",
        )
        assert SUBSCRIPTION in SUBSCRIPTIONS

    def test_the_projection_holds_no_contact_details_or_names(self):
        columns = set(Customer.__table__.columns.keys())
        assert columns.isdisjoint({"email", "phone", "first_name", "last_name", "birthday"})


class TestCreatedAndUpdated:
    async def test_created_projects_what_segmentation_needs(self, session):
        cid = uuid.uuid4()
        await handle(session, envelope(CUSTOMER_CREATED, customer("sp-1", cid), at(0)))
        row = await projected(session, "sp-1")
        assert row is not None
        assert (row.customer_id, row.status, row.merged_into_external_id) == (cid, "active", None)
        assert (row.country, row.city, row.locale, row.timezone) == (
            "PT",
            "Porto",
            "pt-PT",
            "Europe/Lisbon",
        )
        assert (row.gender, row.birthday_month, row.source_channel) == ("female", 4, "app")
        assert row.registered_at == at(-1000)
        assert row.updated_at == at(0)

    async def test_a_newer_update_overwrites(self, session):
        cid = uuid.uuid4()
        await handle(session, envelope(CUSTOMER_CREATED, customer("sp-2", cid), at(0)))
        newer = customer("sp-2", cid, city="Lisbon", birthday=None)
        await handle(session, envelope(CUSTOMER_UPDATED, newer, at(5)))
        row = await projected(session, "sp-2")
        assert row is not None
        assert (row.city, row.birthday_month, row.updated_at) == ("Lisbon", None, at(5))

    async def test_an_older_update_arriving_late_is_ignored(self, session):
        cid = uuid.uuid4()
        await handle(session, envelope(CUSTOMER_UPDATED, customer("sp-3", cid, city="New"), at(9)))
        await handle(session, envelope(CUSTOMER_CREATED, customer("sp-3", cid, city="Old"), at(1)))
        row = await projected(session, "sp-3")
        assert row is not None and (row.city, row.updated_at) == ("New", at(9))

    async def test_the_same_event_twice_changes_nothing(self, session):
        event = envelope(CUSTOMER_CREATED, customer("sp-4"), at(0))
        await handle(session, event)
        await handle(session, event)
        count = select(func.count()).where(Customer.customer_external_id == "sp-4")
        assert (await session.execute(count)).scalar_one() == 1

    async def test_attributes_are_kept_and_the_customer_is_queued(self, session):
        from tests.segment.consumers.samples import queued

        cid = uuid.uuid4()
        first = customer("sp-6", cid, attributes={"plan": "b2b", "stores": 3})
        await handle(session, envelope(CUSTOMER_CREATED, first, at(0)))
        row = await projected(session, "sp-6")
        assert row is not None and row.attributes == {"plan": "b2b", "stores": 3}
        assert await queued(session) == {"sp-6": "input"}
        await handle(session, envelope(CUSTOMER_UPDATED, customer("sp-6", cid), at(5)))
        row = await projected(session, "sp-6")
        assert row is not None and row.attributes == {}

    async def test_an_ignored_older_update_queues_nobody(self, session):
        from crm_segment.models import EvaluationQueue
        from tests.segment.consumers.samples import queued

        cid = uuid.uuid4()
        await handle(session, envelope(CUSTOMER_CREATED, customer("sp-7", cid), at(5)))
        await session.execute(delete(EvaluationQueue))
        await handle(session, envelope(CUSTOMER_UPDATED, customer("sp-7", cid), at(1)))
        assert await queued(session) == {}

    async def test_a_malformed_payload_is_refused(self, session):
        from pydantic import ValidationError

        event = envelope(CUSTOMER_CREATED, customer("sp-5"), at(0))
        event.data["customer_id"] = "not-a-uuid"
        with pytest.raises(ValidationError):
            await handle(session, event)


class TestMergedAndUnmerged:
    async def test_merge_marks_the_duplicate_and_undo_restores_it(self, session):
        s, d = ("sp-10", uuid.uuid4()), ("sp-11", uuid.uuid4())
        for n, (ext, cid) in enumerate((s, d)):
            await handle(session, envelope(CUSTOMER_CREATED, customer(ext, cid), at(n)))
        await handle(session, envelope(CUSTOMER_MERGED, merged(s, d), at(10)))
        row = await projected(session, "sp-11")
        assert row is not None
        assert (row.status, row.merged_into_external_id) == ("merged", "sp-10")
        survivor = await projected(session, "sp-10")
        assert survivor is not None and survivor.status == "active"
        await handle(session, envelope(CUSTOMER_UNMERGED, unmerged(s, d), at(20)))
        row = await projected(session, "sp-11")
        assert row is not None
        assert (row.status, row.merged_into_external_id) == ("active", None)
        assert row.city == "Porto"  # fields untouched by merges

    async def test_a_merge_before_the_customer_is_known_keeps_a_stub(self, session):
        s, d = ("sp-12", uuid.uuid4()), ("sp-13", uuid.uuid4())
        await handle(session, envelope(CUSTOMER_MERGED, merged(s, d), at(10)))
        stub = await projected(session, "sp-13")
        assert stub is not None
        assert (stub.customer_id, stub.status, stub.updated_at) == (d[1], "merged", None)
        await handle(session, envelope(CUSTOMER_CREATED, customer(*d), at(1)))
        row = await projected(session, "sp-13")
        assert row is not None
        assert (row.status, row.merged_into_external_id, row.city) == ("merged", "sp-12", "Porto")

    async def test_an_older_merge_arriving_after_its_undo_is_ignored(self, session):
        s, d = ("sp-14", uuid.uuid4()), ("sp-15", uuid.uuid4())
        await handle(session, envelope(CUSTOMER_UNMERGED, unmerged(s, d), at(20)))
        await handle(session, envelope(CUSTOMER_MERGED, merged(s, d), at(10)))
        row = await projected(session, "sp-15")
        assert row is not None and row.status == "active"


class TestErased:
    async def test_deletes_every_erased_id_and_keeps_the_others(self, session):
        s, d, other = ("sp-20", uuid.uuid4()), ("sp-21", uuid.uuid4()), ("sp-22", uuid.uuid4())
        for n, person in enumerate((s, d, other)):
            await handle(session, envelope(CUSTOMER_CREATED, customer(*person), at(n)))
        await handle(session, envelope(CUSTOMER_MERGED, merged(s, d), at(10)))
        await handle(session, envelope(CUSTOMER_ERASED, erased(s, d), at(30)))
        assert await projected(session, "sp-20") is None
        assert await projected(session, "sp-21") is None
        assert await projected(session, "sp-22") is not None
        tombstones = set((await session.execute(select(ErasedCustomer.customer_id))).scalars())
        assert {s[1], d[1]} <= tombstones and other[1] not in tombstones

    async def test_late_events_about_an_erased_customer_are_refused(self, session):
        s, d = ("sp-23", uuid.uuid4()), ("sp-24", uuid.uuid4())
        await handle(session, envelope(CUSTOMER_ERASED, erased(s, d), at(30)))
        await handle(session, envelope(CUSTOMER_UPDATED, customer(*s), at(1)))
        await handle(session, envelope(CUSTOMER_MERGED, merged(s, d), at(2)))
        await handle(session, envelope(CUSTOMER_UNMERGED, unmerged(s, d), at(3)))
        assert await projected(session, "sp-23") is None
        assert await projected(session, "sp-24") is None

    async def test_the_same_external_id_may_start_over(self, session):
        old, new = ("sp-25", uuid.uuid4()), ("sp-25", uuid.uuid4())
        await handle(session, envelope(CUSTOMER_CREATED, customer(*old), at(0)))
        await handle(session, envelope(CUSTOMER_ERASED, erased(old), at(30)))
        await handle(session, envelope(CUSTOMER_CREATED, customer(*new, city=None), at(40)))
        row = await projected(session, "sp-25")
        assert row is not None and (row.customer_id, row.city) == (new[1], None)

    async def test_ids_of_rows_are_tombstoned_when_the_event_lists_none(self, session):
        person = ("sp-26", uuid.uuid4())
        await handle(session, envelope(CUSTOMER_CREATED, customer(*person), at(0)))
        event = envelope(CUSTOMER_ERASED, erased(person, with_ids=False), at(30))
        await handle(session, event)
        await handle(session, envelope(CUSTOMER_UPDATED, customer(*person), at(1)))
        assert await projected(session, "sp-26") is None

    async def test_deletes_dead_letters_naming_the_customer(self, session):
        person = ("sp-27", uuid.uuid4())
        for subject_id, body in [
            ("sp-27", {"x": 1}),
            ("other", {"customer_external_id": "sp-27"}),
            ("sp-270", {"customer_external_id": "sp-270"}),
        ]:
            await session.execute(
                insert(dead_letter_table).values(
                    consumer="segment-profile-customers",
                    subject="crm.profile.customer.updated",
                    headers={"ce-subject": subject_id},
                    body=orjson.dumps(body),
                    error="boom",
                    deliveries=8,
                )
            )
        await handle(session, envelope(CUSTOMER_ERASED, erased(person), at(30)))
        mine = dead_letter_table.c.headers["ce-subject"].astext.in_(["sp-27", "other", "sp-270"])
        left = await session.execute(select(dead_letter_table.c.headers).where(mine))
        assert left.scalars().all() == [{"ce-subject": "sp-270"}]


class TestOtherSubjects:
    async def test_an_unknown_customer_event_is_skipped(self, session):
        from crm_common.events import Envelope

        event = Envelope(
            subject="crm.profile.customer.archived",
            type="crm.profile.customer.archived.v1",
            source="/crm/profile",
            subject_id="sp-30",
            data={"customer_external_id": "sp-30"},
        )
        await handle(session, event)
        assert await projected(session, "sp-30") is None
