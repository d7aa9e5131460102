"""``/v1/me/consents``: a customer reads and decides their own consent with their token."""

from __future__ import annotations

import pytest

from tests.profile.conftest import published, put_customer
from tests.profile.consents.conftest import bearer
from tests.profile.timeline.factories import merge

CHANGED = "crm.profile.consent.changed"


class TestGetMyConsents:
    async def test_lists_every_channel_and_purpose(self, client):
        await put_customer(client, "me-1")
        await client.put(
            "/v1/customers/me-1/consents/sms", json={"status": "denied", "source": "checkout"}
        )
        response = await client.get("/v1/me/consents", headers=bearer("me-1"))
        assert response.status_code == 200
        items = response.json()["items"]
        assert len(items) == 8
        sms = next(i for i in items if (i["channel"], i["purpose"]) == ("sms", "marketing"))
        assert sms["status"] == "denied"

    async def test_without_a_token(self, anonymous):
        assert (await anonymous.get("/v1/me/consents")).status_code == 401

    async def test_an_api_key_is_not_a_customer_token(self, client):
        assert (await client.get("/v1/me/consents")).status_code == 401

    async def test_token_of_an_unknown_customer(self, anonymous):
        response = await anonymous.get("/v1/me/consents", headers=bearer("me-nobody"))
        assert response.status_code == 404

    async def test_merged_customer_sees_the_group(self, client, session):
        await put_customer(client, "me-2")
        await put_customer(client, "me-2-dup")
        await client.put(
            "/v1/customers/me-2/consents/push", json={"status": "granted", "source": "app"}
        )
        await merge(session, "me-2", "me-2-dup")
        response = await client.get("/v1/me/consents/push", headers=bearer("me-2-dup"))
        assert response.json()["status"] == "granted"


class TestGetMyConsent:
    async def test_one_channel_marketing_by_default(self, client):
        await put_customer(client, "me-3")
        await client.put(
            "/v1/customers/me-3/consents/email",
            json={"status": "granted", "source": "checkout", "purpose": "transactional"},
        )
        response = await client.get("/v1/me/consents/email", headers=bearer("me-3"))
        assert response.status_code == 200
        assert (response.json()["purpose"], response.json()["status"]) == ("marketing", "unknown")
        response = await client.get(
            "/v1/me/consents/email", params={"purpose": "transactional"}, headers=bearer("me-3")
        )
        assert response.json()["status"] == "granted"

    @pytest.mark.parametrize(
        ("path", "params", "field"),
        [
            ("/v1/me/consents/fax", {}, "path.channel"),
            ("/v1/me/consents/email", {"purpose": "spam"}, "query.purpose"),
        ],
    )
    async def test_invalid_input(self, client, path, params, field):
        await put_customer(client, "me-4")
        response = await client.get(path, params=params, headers=bearer("me-4"))
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]


class TestPutMyConsent:
    async def test_decision_is_recorded_with_source_customer(self, client, session):
        customer = await put_customer(client, "me-5")
        response = await client.put(
            "/v1/me/consents/in_app", json={"status": "granted"}, headers=bearer("me-5")
        )
        assert response.status_code == 200
        assert response.json()["source"] == "customer"
        [event] = await published(session, CHANGED)
        assert event["customer_id"] == customer["id"]
        assert (event["channel"], event["status"], event["source"]) == (
            "in_app",
            "granted",
            "customer",
        )
        history = await client.get("/v1/customers/me-5/consents/history")
        assert history.json()["items"][0]["source"] == "customer"

    async def test_the_customer_cannot_choose_the_source(self, client):
        await put_customer(client, "me-6")
        response = await client.put(
            "/v1/me/consents/email",
            json={"status": "granted", "source": "checkout"},
            headers=bearer("me-6"),
        )
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["body.source"]

    async def test_token_of_an_unknown_customer(self, anonymous, session):
        response = await anonymous.put(
            "/v1/me/consents/email", json={"status": "denied"}, headers=bearer("me-nobody")
        )
        assert response.status_code == 404
        assert await published(session, CHANGED) == []

    async def test_only_the_tokens_customer_is_touched(self, client):
        await put_customer(client, "me-a")
        await put_customer(client, "me-b")
        await client.put("/v1/me/consents/email", json={"status": "denied"}, headers=bearer("me-a"))
        mine = await client.get("/v1/me/consents/email", headers=bearer("me-a"))
        theirs = await client.get("/v1/me/consents/email", headers=bearer("me-b"))
        assert (mine.json()["status"], theirs.json()["status"]) == ("denied", "unknown")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "body.status"),
            ({"status": "yes"}, "body.status"),
            ({"status": "granted", "purpose": "x"}, "body.purpose"),
        ],
    )
    async def test_invalid_body(self, client, body, field):
        await put_customer(client, "me-7")
        response = await client.put("/v1/me/consents/sms", json=body, headers=bearer("me-7"))
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]

    async def test_without_a_token(self, anonymous):
        response = await anonymous.put("/v1/me/consents/sms", json={"status": "granted"})
        assert response.status_code == 401
