"""Committed merge, undo and link through the profile outbox relay to JetStream: once each."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import create_async_engine

from crm_common.broker import ensure_stream
from crm_common.db import Database
from crm_common.events import OutboxRelay
from crm_common.settings import NatsSettings
from crm_common.testing import asgi_client
from crm_profile.events import CustomerMergedV1, CustomerUnmergedV1, IdentityLinkedV1
from crm_profile.models import outbox_table
from tests.conftest import ADMIN_HEADERS
from tests.profile.conftest import stream_messages


async def _relay(crm_runtime, js) -> None:
    engine = create_async_engine(crm_runtime.database_url, pool_size=1, max_overflow=0)
    try:
        relay = OutboxRelay(Database.from_engine(engine), outbox_table, js, service="profile")
        while await relay.publish_batch():
            pass
    finally:
        await engine.dispose()


class TestPublishedThroughJetStream:
    async def test_merge_undo_and_link_each_reach_the_stream_once(
        self, app, crm_runtime, nats_client
    ):
        js = nats_client.jetstream()
        await ensure_stream(js, "profile", NatsSettings(nats_url=crm_runtime.nats_url))
        t = uuid.uuid4().hex[:8]
        survivor, duplicate, device = f"pub-{t}-s", f"pub-{t}-d", f"pub-{t}-device"
        async with asgi_client(app, headers=ADMIN_HEADERS) as client:
            for name in (survivor, duplicate):
                assert (await client.put(f"/v1/customers/{name}", json={})).status_code == 201
            link = {"customer_external_id": duplicate, "anonymous_id": device}
            assert (await client.post("/v1/identify", json=link)).status_code == 201
            assert (await client.post("/v1/identify", json=link)).status_code == 200
            response = await client.post(
                f"/v1/customers/{survivor}/merge", json={"duplicate_external_id": duplicate}
            )
            assert response.status_code == 201
            merge_id = response.json()["id"]
            assert (await client.post(f"/v1/merges/{merge_id}/undo")).status_code == 200
            assert (await client.post(f"/v1/merges/{merge_id}/undo")).status_code == 409
        await _relay(crm_runtime, js)

        merged = [
            m
            for m in await stream_messages(js, "crm.profile.customer.merged")
            if m.data["merge_id"] == merge_id
        ]
        unmerged = [
            m
            for m in await stream_messages(js, "crm.profile.customer.unmerged")
            if m.data["merge_id"] == merge_id
        ]
        linked = [
            m
            for m in await stream_messages(js, "crm.profile.identity.linked")
            if m.data["anonymous_id"] == device
        ]
        assert [len(merged), len(unmerged), len(linked)] == [1, 1, 1]
        assert merged[0].type == "crm.profile.customer.merged.v1"
        assert merged[0].subject_id == survivor
        assert CustomerMergedV1.model_validate(merged[0].data).duplicate_external_id == duplicate
        assert unmerged[0].type == "crm.profile.customer.unmerged.v1"
        assert CustomerUnmergedV1.model_validate(unmerged[0].data).survivor_external_id == survivor
        assert IdentityLinkedV1.model_validate(linked[0].data).customer_external_id == duplicate
