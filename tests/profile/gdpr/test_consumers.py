"""Parts of exports contributed by other services (``crm.<svc>.export.contributed``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from crm_common.events import Envelope, PoisonMessage
from crm_profile.consumers import SUBSCRIPTIONS
from crm_profile.consumers.exports import contribution_handler, export_subscriptions
from crm_profile.models import ExportJob
from crm_segment.events import EXPORT_CONTRIBUTED, ExportContributedV1
from tests.profile.conftest import put_customer


async def new_job(client, session, external_id: str) -> ExportJob:
    """A collecting export of a new customer."""
    await put_customer(client, external_id)
    body = (await client.post(f"/v1/customers/{external_id}/export")).json()
    job: ExportJob | None = await session.get(ExportJob, uuid.UUID(body["id"]))
    assert job is not None
    return job


def contribution(export_id: uuid.UUID, data: dict[str, Any], service: str = "segment") -> Envelope:
    """Segment's answer, enveloped as the relay would publish it (``service`` may be wrong)."""
    payload = ExportContributedV1.model_construct(
        export_id=str(export_id), customer_external_id="c", service="segment", data=data
    )
    envelope = EXPORT_CONTRIBUTED.envelope(payload, subject_id=str(export_id))
    envelope.data["service"] = service
    return envelope


class TestSubscriptions:
    def test_one_durable_per_contributing_service(self):
        subs = export_subscriptions(["segment", "loyalty"])
        assert [(s.subject, s.durable) for s in subs] == [
            ("crm.segment.export.contributed", "profile-segment-exports"),
            ("crm.loyalty.export.contributed", "profile-loyalty-exports"),
        ]

    def test_profile_subscribes_to_the_configured_parts(self):
        durables = {s.durable for s in SUBSCRIPTIONS}
        assert "profile-segment-exports" in durables
        assert "profile-segment-tags" in durables  # the tag consumer stays alongside


class TestContributionHandler:
    async def test_stores_the_part_and_completes_the_job(self, client, session):
        job = await new_job(client, session, "gc-1")
        await contribution_handler("segment")(
            session, contribution(job.id, {"customers": [{"city": "Faro"}]})
        )
        await session.refresh(job)
        assert job.status == "done" and job.completed_at is not None
        assert job.parts["segment"] == {"customers": [{"city": "Faro"}]}
        assert set(job.parts) == {"profile", "segment"}

    async def test_a_part_under_another_services_name_is_poison(self, client, session):
        job = await new_job(client, session, "gc-2")
        with pytest.raises(PoisonMessage):
            await contribution_handler("segment")(session, contribution(job.id, {}, "loyalty"))

    async def test_a_malformed_part_is_refused(self, session):
        envelope = contribution(uuid.uuid4(), {})
        envelope.data["export_id"] = "not-a-uuid"
        with pytest.raises(ValidationError):
            await contribution_handler("segment")(session, envelope)

    async def test_a_part_for_an_unknown_export_is_dropped(self, session):
        await contribution_handler("segment")(session, contribution(uuid.uuid4(), {"x": 1}))

    async def test_a_part_the_job_does_not_expect_is_dropped(self, client, session):
        job = await new_job(client, session, "gc-3")
        await contribution_handler("loyalty")(session, contribution(job.id, {}, "loyalty"))
        await session.refresh(job)
        assert job.status == "collecting" and "loyalty" not in job.parts

    async def test_a_finished_document_does_not_change(self, client, session):
        job = await new_job(client, session, "gc-4")
        handler = contribution_handler("segment")
        await handler(session, contribution(job.id, {"n": 1}))
        await handler(session, contribution(job.id, {"n": 2}))
        await session.refresh(job)
        assert job.parts["segment"] == {"n": 1}
