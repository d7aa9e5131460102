"""``/v1/customers/{external_id}/consents``: decisions, effective state, history, events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crm_profile.models import Consent, ConsentHistory
from tests.profile.conftest import published, put_customer
from tests.profile.timeline.factories import customer_row, merge

CHANGED = "crm.profile.consent.changed"
NOW = datetime.now(UTC)


def ago(hours: float) -> str:
    """An ISO time ``hours`` before the module was imported."""
    return (NOW - timedelta(hours=hours)).isoformat()


async def decide(client, external_id: str, channel: str = "email", **body):
    """PUT a decision; the response."""
    body = {"status": "granted", "source": "checkout"} | body
    return await client.put(f"/v1/customers/{external_id}/consents/{channel}", json=body)


async def state(client, external_id: str, channel: str, purpose: str = "marketing") -> dict:
    """The effective state of one channel and purpose."""
    response = await client.get(f"/v1/customers/{external_id}/consents")
    assert response.status_code == 200, response.text
    return next(
        i for i in response.json()["items"] if (i["channel"], i["purpose"]) == (channel, purpose)
    )


async def history_count(session) -> int:
    """Rows of the consent history."""
    return (await session.execute(select(func.count()).select_from(ConsentHistory))).scalar_one()


class TestPutConsent:
    async def test_anonymous(self, anonymous):
        response = await anonymous.put(
            "/v1/customers/x/consents/email", json={"status": "granted", "source": "s"}
        )
        assert response.status_code == 401

    async def test_read_scope_is_not_enough(self, reader, client):
        await put_customer(client, "cs-ro")
        response = await decide(reader, "cs-ro")
        assert response.status_code == 403

    async def test_first_decision_is_recorded_and_published(self, client, session):
        customer = await put_customer(client, "cs-1")
        response = await decide(client, "cs-1", "sms", status="denied", decided_at=ago(1))
        assert response.status_code == 200
        assert response.json() == {
            "channel": "sms",
            "purpose": "marketing",
            "status": "denied",
            "source": "checkout",
            "decided_at": (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        }
        assert await published(session, CHANGED) == [
            {
                "customer_id": customer["id"],
                "customer_external_id": "cs-1",
                "channel": "sms",
                "purpose": "marketing",
                "status": "denied",
                "source": "checkout",
                "decided_at": response.json()["decided_at"],
            }
        ]
        assert await history_count(session) == 1

    async def test_decided_at_defaults_to_now(self, client):
        await put_customer(client, "cs-2")
        before = datetime.now(UTC)
        response = await decide(client, "cs-2", purpose="transactional")
        decided = datetime.fromisoformat(response.json()["decided_at"])
        assert before <= decided <= datetime.now(UTC)
        assert response.json()["purpose"] == "transactional"

    async def test_same_status_again_is_kept_but_not_published(self, client, session):
        await put_customer(client, "cs-3")
        await decide(client, "cs-3", decided_at=ago(3))
        response = await decide(client, "cs-3", source="preference_center", decided_at=ago(2))
        assert response.json()["source"] == "preference_center"
        assert len(await published(session, CHANGED)) == 1
        assert await history_count(session) == 2

    async def test_a_change_of_status_is_published(self, client, session):
        await put_customer(client, "cs-4")
        await decide(client, "cs-4", decided_at=ago(3))
        await decide(client, "cs-4", status="denied", decided_at=ago(2))
        await decide(client, "cs-4", decided_at=ago(1))
        assert [e["status"] for e in await published(session, CHANGED)] == [
            "granted",
            "denied",
            "granted",
        ]

    async def test_a_late_older_decision_is_kept_but_does_not_override(self, client, session):
        await put_customer(client, "cs-5")
        await decide(client, "cs-5", decided_at=ago(1))
        response = await decide(client, "cs-5", status="denied", source="old", decided_at=ago(5))
        assert response.status_code == 200
        assert response.json()["status"] == "granted"
        assert (await state(client, "cs-5", "email"))["status"] == "granted"
        assert len(await published(session, CHANGED)) == 1
        assert await history_count(session) == 2
        row = (await session.execute(select(Consent))).scalar_one()
        assert row.source == "checkout"

    async def test_on_an_exact_tie_the_denial_wins(self, client):
        await put_customer(client, "cs-6")
        when = ago(2)
        await decide(client, "cs-6", status="denied", decided_at=when)
        response = await decide(client, "cs-6", status="granted", decided_at=when)
        assert response.json()["status"] == "denied"
        await put_customer(client, "cs-6b")
        await decide(client, "cs-6b", status="granted", decided_at=when)
        response = await decide(client, "cs-6b", status="denied", decided_at=when)
        assert response.json()["status"] == "denied"

    async def test_purposes_and_channels_are_independent(self, client, session):
        await put_customer(client, "cs-7")
        await decide(client, "cs-7", "email", status="denied")
        await decide(client, "cs-7", "email", status="granted", purpose="transactional")
        await decide(client, "cs-7", "push", status="granted")
        assert (await state(client, "cs-7", "email"))["status"] == "denied"
        assert (await state(client, "cs-7", "email", "transactional"))["status"] == "granted"
        assert (await state(client, "cs-7", "push"))["status"] == "granted"
        assert (await state(client, "cs-7", "sms"))["status"] == "unknown"
        assert len(await published(session, CHANGED)) == 3

    async def test_unknown_customer(self, client, session):
        response = await decide(client, "cs-nobody")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:customer-not-found"
        assert await history_count(session) == 0

    async def test_decision_for_a_merged_duplicate_stays_with_it_and_counts_for_the_group(
        self, client, session
    ):
        survivor = await put_customer(client, "cs-8")
        await put_customer(client, "cs-8-dup")
        await merge(session, "cs-8", "cs-8-dup")
        response = await decide(client, "cs-8-dup", status="denied")
        assert response.status_code == 200
        dup = await customer_row(session, "cs-8-dup")
        stored = (await session.execute(select(Consent))).scalar_one()
        assert stored.customer_id == dup.id
        assert (await state(client, "cs-8", "email"))["status"] == "denied"
        [event] = await published(session, CHANGED)
        assert event["customer_external_id"] == "cs-8"
        assert event["customer_id"] == survivor["id"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"status": "maybe", "source": "s"}, "body.status"),
            ({"source": "s"}, "body.status"),
            ({"status": "granted"}, "body.source"),
            ({"status": "granted", "source": ""}, "body.source"),
            ({"status": "granted", "source": "x" * 65}, "body.source"),
            ({"status": "granted", "source": "a\nb"}, "body.source"),
            ({"status": "granted", "source": 7}, "body.source"),
            ({"status": "granted", "source": "s", "purpose": "spam"}, "body.purpose"),
            (
                {"status": "granted", "source": "s", "decided_at": "2026-01-01T00:00:00"},
                "body.decided_at",
            ),
            ({"status": "granted", "source": "s", "decided_at": "tomorrow"}, "body.decided_at"),
            ({"status": "granted", "source": "s", "channel": "sms"}, "body.channel"),
        ],
    )
    async def test_invalid_body_is_a_422_naming_the_field(self, client, session, body, field):
        await put_customer(client, "cs-bad")
        response = await client.put("/v1/customers/cs-bad/consents/email", json=body)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]
        assert await history_count(session) == 0

    async def test_decided_at_in_the_future_is_refused(self, client):
        await put_customer(client, "cs-future")
        later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        response = await decide(client, "cs-future", decided_at=later)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.decided_at"

    async def test_unknown_channel_is_a_422_naming_the_path(self, client):
        await put_customer(client, "cs-chan")
        response = await decide(client, "cs-chan", "fax")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.channel"]

    async def test_history_is_not_a_channel(self, client):
        response = await decide(client, "cs-hist", "history")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET"

    async def test_invalid_external_id(self, client):
        response = await decide(client, "bad id!")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.external_id"]


class TestGetConsents:
    async def test_every_channel_and_purpose_is_listed_unknown_until_decided(self, client):
        await put_customer(client, "cg-1")
        response = await client.get("/v1/customers/cg-1/consents")
        assert response.status_code == 200
        body = response.json()
        assert body["next_cursor"] is None
        assert [(i["channel"], i["purpose"]) for i in body["items"]] == [
            (c, p)
            for c in ("email", "sms", "push", "in_app")
            for p in ("marketing", "transactional")
        ]
        assert {i["status"] for i in body["items"]} == {"unknown"}
        assert {i["source"] for i in body["items"]} == {None}

    async def test_latest_decision_across_the_merge_group_wins(self, client, session):
        await put_customer(client, "cg-2")
        await put_customer(client, "cg-2-dup")
        await decide(client, "cg-2", status="granted", decided_at=ago(5))
        await decide(client, "cg-2-dup", status="denied", source="dup", decided_at=ago(2))
        await decide(client, "cg-2-dup", "sms", status="denied", decided_at=ago(5))
        await decide(client, "cg-2", "sms", status="granted", decided_at=ago(1))
        assert (await state(client, "cg-2", "email"))["status"] == "granted"
        await merge(session, "cg-2", "cg-2-dup")
        email = await state(client, "cg-2", "email")
        assert (email["status"], email["source"]) == ("denied", "dup")
        assert (await state(client, "cg-2", "sms"))["status"] == "granted"
        # The duplicate's id reads its survivor's group.
        assert (await state(client, "cg-2-dup", "sms"))["status"] == "granted"

    async def test_unknown_customer(self, client):
        response = await client.get("/v1/customers/cg-nobody/consents")
        assert response.status_code == 404

    async def test_anonymous(self, anonymous):
        assert (await anonymous.get("/v1/customers/x/consents")).status_code == 401

    async def test_read_scope_is_enough(self, reader, client):
        await put_customer(client, "cg-ro")
        assert (await reader.get("/v1/customers/cg-ro/consents")).status_code == 200


class TestConsentHistory:
    async def test_every_decision_latest_first_across_the_group(self, client, session):
        await put_customer(client, "ch-1")
        await put_customer(client, "ch-1-dup")
        await decide(client, "ch-1", decided_at=ago(1))
        await decide(client, "ch-1", status="denied", decided_at=ago(4))  # late, overridden
        await decide(client, "ch-1-dup", "sms", decided_at=ago(2))
        await merge(session, "ch-1", "ch-1-dup")
        response = await client.get("/v1/customers/ch-1/consents/history")
        assert response.status_code == 200
        items = response.json()["items"]
        assert [(i["customer_external_id"], i["channel"], i["status"]) for i in items] == [
            ("ch-1", "email", "granted"),
            ("ch-1-dup", "sms", "granted"),
            ("ch-1", "email", "denied"),
        ]
        assert set(items[0]) == {
            "id",
            "customer_external_id",
            "channel",
            "purpose",
            "status",
            "source",
            "decided_at",
            "recorded_at",
        }
        assert response.json()["next_cursor"] is None

    async def test_pages_follow_each_other(self, client):
        await put_customer(client, "ch-2")
        for hours in range(5):
            await decide(client, "ch-2", "push", decided_at=ago(hours + 1))
        await decide(client, "ch-2", "sms", decided_at=ago(1))  # same time as another: id breaks it
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/customers/ch-2/consents/history", params=params)).json()
            assert len(page["items"]) <= 2
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 6
        assert len({i["id"] for i in seen}) == 6
        keys = [(i["decided_at"], i["id"]) for i in seen]
        assert keys == sorted(keys, reverse=True)

    async def test_filters(self, client):
        await put_customer(client, "ch-3")
        await decide(client, "ch-3", "email")
        await decide(client, "ch-3", "email", purpose="transactional")
        await decide(client, "ch-3", "sms")
        response = await client.get(
            "/v1/customers/ch-3/consents/history",
            params={"channel": "email", "purpose": "marketing"},
        )
        assert [(i["channel"], i["purpose"]) for i in response.json()["items"]] == [
            ("email", "marketing")
        ]

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"limit": 0}, "query.limit"),
            ({"limit": 201}, "query.limit"),
            ({"channel": "fax"}, "query.channel"),
            ({"purpose": "spam"}, "query.purpose"),
        ],
    )
    async def test_invalid_query(self, client, params, field):
        await put_customer(client, "ch-4")
        response = await client.get("/v1/customers/ch-4/consents/history", params=params)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]

    @pytest.mark.parametrize(
        "cursor",
        ["garbage", "WyJ4Il0", "WyJub3QtYS1kYXRlIiwgMV0", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgMV0"],
    )
    async def test_foreign_cursor_is_a_400(self, client, cursor):
        await put_customer(client, "ch-5")
        response = await client.get(
            "/v1/customers/ch-5/consents/history", params={"cursor": cursor}
        )
        assert response.status_code == 400
        assert response.json()["type"] == "urn:crm:problem:invalid-cursor"

    async def test_unknown_customer(self, client):
        assert (await client.get("/v1/customers/ch-nobody/consents/history")).status_code == 404
