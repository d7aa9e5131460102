"""Service rules that the API cannot reach on its own (races, empty contact details)."""

from __future__ import annotations

import pytest

from crm_profile.config import settings
from crm_profile.customers.errors import CustomerMerged
from crm_profile.identity import service
from tests.profile.identity.conftest import customer_row, published, put_customer


class TestMergeCustomers:
    async def test_a_survivor_merged_meanwhile_is_409(self, client, session):
        for name in ("sv-a", "sv-b", "sv-c"):
            await put_customer(client, name)
        stale = await customer_row(session, "sv-b")  # resolved before another request merged it
        merged = await client.post(
            "/v1/customers/sv-a/merge", json={"duplicate_external_id": "sv-b"}
        )
        assert merged.status_code == 201
        duplicate = await customer_row(session, "sv-c")
        with pytest.raises(CustomerMerged):
            await service.merge_customers(
                session, stale, duplicate, rule="manual", reason=None, actor=None
            )
        assert (await customer_row(session, "sv-c")).status == "active"

    async def test_system_actor_is_named_in_the_record(self, client, session):
        await put_customer(client, "sv-d")
        await put_customer(client, "sv-e")
        survivor, duplicate = (
            await customer_row(session, "sv-d"),
            await customer_row(session, "sv-e"),
        )
        record = await service.merge_customers(
            session, survivor, duplicate, rule="email", reason=None, actor=None
        )
        assert record.merged_by == "system"


class TestAutoMerge:
    async def test_no_contact_details_no_candidates(self, client, session, monkeypatch):
        monkeypatch.setattr(settings, "auto_merge_email", True)
        monkeypatch.setattr(settings, "auto_merge_phone", True)
        await put_customer(client, "sv-f")
        await put_customer(client, "sv-g")
        await service.auto_merge(session, await customer_row(session, "sv-g"), None)
        assert await published(session, "crm.profile.customer.merged") == []
