"""Profile's export requests → segment's part (``segment-profile-exports``)."""

from __future__ import annotations

import uuid

from crm_profile.events import CUSTOMER_CREATED, EXPORT_REQUESTED, ExportRequestedV1
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.consumers.profile_customers import on_profile_customer
from crm_segment.consumers.profile_exports import SUBSCRIPTION, on_export_requested
from crm_segment.events import ExportContributedV1
from tests.segment.conftest import at, envelope, published
from tests.segment.consumers.test_profile_customers import customer

CONTRIBUTED = "crm.segment.export.contributed"


def requested(export_id: str, *external_ids: str) -> ExportRequestedV1:
    """Profile's request to export ``external_ids`` (the first is the survivor)."""
    return ExportRequestedV1(
        export_id=export_id,
        customer_external_id=external_ids[0],
        customer_external_ids=list(external_ids),
    )


class TestSubscription:
    def test_durable(self):
        assert (SUBSCRIPTION.subject, SUBSCRIPTION.durable) == (
            "crm.profile.export.requested",
            "segment-profile-exports",
        )
        assert SUBSCRIPTION in SUBSCRIPTIONS


class TestExportRequested:
    async def test_contributes_every_row_of_the_group(self, session):
        s, d = uuid.uuid4(), uuid.uuid4()
        await on_profile_customer(session, envelope(CUSTOMER_CREATED, customer("se-1", s), at(0)))
        await on_profile_customer(session, envelope(CUSTOMER_CREATED, customer("se-2", d), at(0)))
        await on_profile_customer(session, envelope(CUSTOMER_CREATED, customer("se-3"), at(0)))
        export_id = str(uuid.uuid4())
        event = envelope(EXPORT_REQUESTED, requested(export_id, "se-1", "se-2"), at(1))
        await on_export_requested(session, event)
        [part] = await published(session, CONTRIBUTED)
        assert part.pop("_subject_id") == export_id
        ExportContributedV1.model_validate(part)
        assert (part["export_id"], part["customer_external_id"], part["service"]) == (
            export_id,
            "se-1",
            "segment",
        )
        rows = part["data"]["customers"]
        assert [r["customer_external_id"] for r in rows] == ["se-1", "se-2"]
        assert rows[0]["customer_id"] == str(s)
        assert rows[0]["city"] == "Porto" and rows[0]["birthday_month"] == 4
        assert rows[0]["updated_at"] == at(0).isoformat().replace("+00:00", "Z")

    async def test_a_customer_segment_never_saw_gets_an_empty_part(self, session):
        export_id = str(uuid.uuid4())
        await on_export_requested(
            session, envelope(EXPORT_REQUESTED, requested(export_id, "se-none"), at(1))
        )
        [part] = await published(session, CONTRIBUTED)
        kinds = ("customers", "orders", "interactions", "consents", "tags", "loyalty", "scores")
        assert part["data"] == {kind: [] for kind in (*kinds, "segments")}
