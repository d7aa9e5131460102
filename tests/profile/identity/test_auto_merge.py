"""Automatic merging on create/update by exact email or phone (``PROFILE_AUTO_MERGE_*``)."""

from __future__ import annotations

import pytest

from crm_profile.config import settings
from tests.profile.identity.conftest import (
    age,
    audit_actions,
    customer_row,
    published,
    put_customer,
)

MERGED = "crm.profile.customer.merged"
PHONE = "+44 20 7946 0321"


@pytest.fixture
def rules(monkeypatch):
    """Turn the automatic rules on or off for one test."""

    def set_rules(*, email: bool, phone: bool) -> None:
        monkeypatch.setattr(settings, "auto_merge_email", email)
        monkeypatch.setattr(settings, "auto_merge_phone", phone)

    return set_rules


async def older(client, session, external_id, days=10, **fields):
    """A customer created ``days`` ago."""
    body = await put_customer(client, external_id, **fields)
    await age(session, external_id, days)
    return body


class TestOffByDefault:
    def test_both_rules_default_to_off(self):
        from crm_profile.config import Settings

        fields = Settings.model_fields
        assert fields["auto_merge_email"].default is False
        assert fields["auto_merge_phone"].default is False

    async def test_same_email_and_phone_are_not_merged(self, client, session, rules):
        rules(email=False, phone=False)
        await older(client, session, "am-a", email="off@example.com", phone=PHONE)
        body = await put_customer(client, "am-b", email="off@example.com", phone=PHONE)
        assert body["status"] == "active"
        assert await published(session, MERGED) == []
        assert (await customer_row(session, "am-a")).status == "active"


class TestEmailRule:
    async def test_a_new_customer_is_merged_into_the_older_one(self, client, session, rules):
        rules(email=True, phone=False)
        a = await older(client, session, "am-c", email="same@example.com")
        b = await put_customer(client, "am-d", email=" SAME@example.com", city="Porto")
        assert b["status"] == "merged"
        events = await published(session, MERGED)
        assert len(events) == 1
        assert events[0] | {"merge_id": None} == {
            "merge_id": None,
            "survivor_id": a["id"],
            "survivor_external_id": "am-c",
            "duplicate_id": b["id"],
            "duplicate_external_id": "am-d",
            "rule": "email",
        }
        survivor = (await client.get("/v1/customers/am-d")).json()
        assert survivor["id"] == a["id"]
        assert survivor["city"] == "Porto"  # filled from the duplicate
        record = (await client.get(f"/v1/merges/{events[0]['merge_id']}")).json()
        assert (record["rule"], record["merged_by"]) == ("email", "key:local-admin")
        assert await audit_actions(session, events[0]["merge_id"]) == ["customer.merged"]

    async def test_an_older_customer_updated_to_match_absorbs_the_newer(
        self, client, session, rules
    ):
        rules(email=True, phone=False)
        a = await older(client, session, "am-e", email="e-old@example.com")
        b = await put_customer(client, "am-f", email="e-new@example.com")
        assert await published(session, MERGED) == []
        response = await client.patch("/v1/customers/am-e", json={"email": "e-new@example.com"})
        assert response.status_code == 200
        assert response.json()["status"] == "active"
        events = await published(session, MERGED)
        assert [(e["survivor_id"], e["duplicate_id"]) for e in events] == [(a["id"], b["id"])]

    async def test_every_newer_match_is_absorbed(self, client, session, rules):
        rules(email=False, phone=False)
        a = await older(client, session, "am-g", email="g-old@example.com")
        await put_customer(client, "am-g1", email="g@example.com")
        await put_customer(client, "am-g2", email="g@example.com")
        rules(email=True, phone=False)
        await client.patch("/v1/customers/am-g", json={"email": "g@example.com"})
        events = await published(session, MERGED)
        assert sorted(e["duplicate_external_id"] for e in events) == ["am-g1", "am-g2"]
        assert {e["survivor_id"] for e in events} == {a["id"]}

    async def test_phone_match_alone_is_not_merged(self, client, session, rules):
        rules(email=True, phone=False)
        await older(client, session, "am-h", email="h1@example.com", phone=PHONE)
        await put_customer(client, "am-i", email="h2@example.com", phone=PHONE)
        assert await published(session, MERGED) == []

    async def test_merged_customers_are_not_matched(self, client, session, rules):
        rules(email=False, phone=False)
        await older(client, session, "am-j", email="j1@example.com")
        await put_customer(client, "am-k", email="j2@example.com")
        await client.post("/v1/customers/am-j/merge", json={"duplicate_external_id": "am-k"})
        rules(email=True, phone=False)
        await put_customer(client, "am-l", email="j2@example.com")
        assert [e["rule"] for e in await published(session, MERGED)] == ["manual"]
        assert (await customer_row(session, "am-l")).status == "active"

    async def test_an_undone_pair_is_not_merged_again(self, client, session, rules):
        rules(email=True, phone=False)
        await older(client, session, "am-m", email="m@example.com")
        await put_customer(client, "am-n", email="m@example.com")
        merge_id = (await published(session, MERGED))[0]["merge_id"]
        assert (await client.post(f"/v1/merges/{merge_id}/undo")).status_code == 200
        await client.patch("/v1/customers/am-n", json={"city": "Faro"})
        await client.patch("/v1/customers/am-m", json={"city": "Faro"})
        assert len(await published(session, MERGED)) == 1
        assert (await customer_row(session, "am-n")).status == "active"

    async def test_unchanged_put_merges_nothing(self, client, session, rules):
        rules(email=False, phone=False)
        await older(client, session, "am-o", email="o@example.com")
        await put_customer(client, "am-p", email="o@example.com")
        rules(email=True, phone=False)
        await put_customer(client, "am-p", email="o@example.com")  # nothing changed
        assert await published(session, MERGED) == []


class TestPhoneRule:
    async def test_same_phone_is_merged_into_the_older(self, client, session, rules):
        rules(email=False, phone=True)
        a = await older(client, session, "am-q", phone=PHONE)
        b = await put_customer(client, "am-r", phone="+442079460321", email="r@example.com")
        events = await published(session, MERGED)
        assert [(e["survivor_id"], e["duplicate_id"], e["rule"]) for e in events] == [
            (a["id"], b["id"], "phone")
        ]

    async def test_email_match_alone_is_not_merged(self, client, session, rules):
        rules(email=False, phone=True)
        await older(client, session, "am-s", email="s@example.com")
        await put_customer(client, "am-t", email="s@example.com")
        assert await published(session, MERGED) == []


class TestBothRules:
    async def test_a_pair_matching_twice_is_merged_once_by_email(self, client, session, rules):
        rules(email=True, phone=True)
        await older(client, session, "am-u", email="u@example.com", phone=PHONE)
        await put_customer(client, "am-v", email="u@example.com", phone=PHONE)
        assert [e["rule"] for e in await published(session, MERGED)] == ["email"]

    async def test_email_and_phone_of_different_customers(self, client, session, rules):
        rules(email=True, phone=True)
        a = await older(client, session, "am-w", days=20, email="w@example.com")
        b = await older(client, session, "am-x", days=10, phone=PHONE)
        await put_customer(client, "am-y", email="w@example.com", phone=PHONE)
        # The newcomer is folded into the older email match; the phone match stays a candidate.
        events = await published(session, MERGED)
        assert [(e["survivor_id"], e["duplicate_external_id"]) for e in events] == [
            (a["id"], "am-y")
        ]
        assert (await customer_row(session, "am-x")).status == "active"
        assert b["status"] == "active"
