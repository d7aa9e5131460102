"""Committed intake through the profile outbox relay to JetStream: one message per request."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import create_async_engine

from crm_common.broker import ensure_stream
from crm_common.db import Database
from crm_common.events import OutboxRelay
from crm_common.settings import NatsSettings
from crm_common.testing import asgi_client
from crm_profile.events import InteractionsRecordedV1
from crm_profile.models import outbox_table
from tests.conftest import ADMIN_HEADERS
from tests.profile.behaviour.conftest import INTERACTION, event
from tests.profile.conftest import stream_messages

CONSUMER_NAME = "crm-tests-behaviour-publishing"


class TestPublishedThroughJetStream:
    async def test_one_message_per_request_reaches_the_stream(self, app, crm_runtime, nats_client):
        js = nats_client.jetstream()
        await ensure_stream(js, "profile", NatsSettings(nats_url=crm_runtime.nats_url))
        customer = f"c-pub-{uuid.uuid4().hex[:8]}"
        first = [event("product_view", {"sku": f"S-{i}"}, customer=customer) for i in range(5)]
        second = [*first[:2], event("app_open", customer=customer)]
        async with asgi_client(app, headers=ADMIN_HEADERS) as client:
            for items in (first, second):
                response = await client.post("/v1/events", json={"events": items})
                assert response.status_code == 202
        assert response.json() == {"accepted": 1, "duplicates": 2, "rejected": []}

        engine = create_async_engine(crm_runtime.database_url, pool_size=1, max_overflow=0)
        try:
            relay = OutboxRelay(Database.from_engine(engine), outbox_table, js, service="profile")
            while await relay.publish_batch():
                pass
        finally:
            await engine.dispose()

        ids = {e["event_id"] for e in first + second}
        mine = [
            m
            for m in await stream_messages(js, INTERACTION)
            if {i["event_id"] for i in m.data["interactions"]} & ids
        ]
        assert [[i["event_id"] for i in m.data["interactions"]] for m in mine] == [
            [e["event_id"] for e in first],
            [second[2]["event_id"]],
        ]
        for message in mine:
            assert message.type == "crm.profile.interaction.recorded.v1"
            assert message.subject_id == str(message.id)
            InteractionsRecordedV1.model_validate(message.data)
        created = [
            m
            for m in await stream_messages(js, "crm.profile.customer.created")
            if m.data["customer_external_id"] == customer
        ]
        assert len(created) == 1
