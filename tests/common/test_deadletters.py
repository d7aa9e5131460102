"""The dead-letter operator API on the plumbing schema: list, replay and discard, end to end."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import insert, select

from crm_common.app import create_service_app
from crm_common.deadletters import dead_letter_router
from crm_common.events import Envelope, Subscription
from crm_common.repository import encode_cursor
from crm_common.settings import ServiceSettings
from crm_common.testing import asgi_client
from tests.common.plumbing import (
    dead_letter_table,
    effect_count,
    inbox_table,
    record_effect,
    sample_event,
)

ADMIN_KEY = "plumbing-dead-letter-admin"


async def still_broken(session, envelope: Envelope) -> None:
    """A handler that keeps failing."""
    raise RuntimeError("downstream still broken")


class Consumers:
    """The test's consumer names (unique per test, so tests never see each other's rows)."""

    def __init__(self, token: str) -> None:
        self.subject = f"crm.plumbing.{token}.happened"
        self.ok = f"dl-ok-{token}"
        self.broken = f"dl-broken-{token}"
        self.gone = f"dl-gone-{token}"


@pytest.fixture
def consumers(token: str) -> Consumers:
    return Consumers(token)


@pytest.fixture
async def operator(crm_runtime, plumbing_db, consumers) -> AsyncIterator[httpx.AsyncClient]:
    subscriptions = [
        Subscription(consumers.subject, consumers.ok, record_effect),
        Subscription(consumers.subject, consumers.broken, still_broken),
    ]
    settings = ServiceSettings(
        service_name="plumbing",
        database_url=crm_runtime.database_url,
        nats_url=crm_runtime.nats_url,
        admin_api_key=ADMIN_KEY,
    )
    app = create_service_app(
        settings=settings,
        title="plumbing (dead letters)",
        description="",
        routers=[dead_letter_router("plumbing", dead_letter_table, inbox_table, subscriptions)],
        database=plumbing_db,
    )
    async with asgi_client(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


async def store(db, consumer: str, envelope: Envelope | None = None, **values) -> int:
    """Store ``envelope`` (or ``values``) as ``consumer``'s dead letter; returns its id."""
    row = {"error": "RuntimeError: database was down", "deliveries": 8, **values}
    if envelope is not None:
        row |= {
            "subject": envelope.subject,
            "event_id": str(envelope.id),
            "headers": envelope.headers(),
            "body": envelope.body(),
        }
    async with db.unit_of_work() as session:
        row_id = await session.scalar(
            insert(dead_letter_table)
            .values(consumer=consumer, **row)
            .returning(dead_letter_table.c.id)
        )
    assert row_id is not None
    return int(row_id)


async def exists(db, row_id: int) -> bool:
    async with db.engine.connect() as conn:
        stmt = select(dead_letter_table.c.id).where(dead_letter_table.c.id == row_id)
        return (await conn.execute(stmt)).first() is not None


async def inbox_events(db, consumer: str) -> list[uuid.UUID]:
    async with db.engine.connect() as conn:
        stmt = select(inbox_table.c.event_id).where(inbox_table.c.consumer == consumer)
        return [r[0] for r in await conn.execute(stmt)]


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict = response.json()
    assert body["type"] == f"urn:crm:problem:{slug}"
    return body


class TestList:
    async def test_oldest_first_in_pages_for_one_consumer(
        self, operator, plumbing_db, consumers
    ) -> None:
        ids = [
            await store(plumbing_db, consumers.ok, sample_event(consumers.subject, str(i)))
            for i in range(3)
        ]
        await store(plumbing_db, consumers.broken, sample_event(consumers.subject))

        first = await operator.get(
            "/v1/dead-letters", params={"consumer": consumers.ok, "limit": 2}
        )
        assert first.status_code == 200, first.text
        page = first.json()
        assert [item["id"] for item in page["items"]] == ids[:2]
        item = page["items"][0]
        assert item["consumer"] == consumers.ok
        assert item["subject"] == consumers.subject
        assert item["event_id"] == item["headers"]["ce-id"]
        assert item["deliveries"] == 8
        assert page["next_cursor"]

        second = await operator.get(
            "/v1/dead-letters",
            params={"consumer": consumers.ok, "limit": 2, "cursor": page["next_cursor"]},
        )
        assert [item["id"] for item in second.json()["items"]] == ids[2:]
        assert second.json()["next_cursor"] is None

    async def test_without_a_filter_every_consumer_is_listed(
        self, operator, plumbing_db, consumers
    ) -> None:
        first = await store(plumbing_db, consumers.ok, sample_event(consumers.subject))
        second = await store(plumbing_db, consumers.broken, sample_event(consumers.subject))

        response = await operator.get(
            "/v1/dead-letters", params={"cursor": encode_cursor([first - 1]), "limit": 500}
        )

        assert response.status_code == 200, response.text
        listed = [item["id"] for item in response.json()["items"]]
        assert listed[:2] == [first, second]

    @pytest.mark.parametrize("position", ["not-a-number", -1, 2**63])
    async def test_a_cursor_that_names_no_position_is_400(self, operator, position) -> None:
        response = await operator.get(
            "/v1/dead-letters", params={"cursor": encode_cursor([position])}
        )
        assert_problem(response, 400, "invalid-cursor")


class TestReplay:
    async def test_applies_the_handler_once(self, operator, plumbing_db, consumers) -> None:
        event = sample_event(consumers.subject, "replayed")
        row_id = await store(plumbing_db, consumers.ok, event)

        response = await operator.post(f"/v1/dead-letters/{row_id}/replay")

        assert response.status_code == 200, response.text
        assert response.json() == {"id": row_id, "outcome": "handled"}
        assert await effect_count(plumbing_db, event.id) == 1
        assert await inbox_events(plumbing_db, consumers.ok) == [event.id]
        assert not await exists(plumbing_db, row_id)
        again = await operator.post(f"/v1/dead-letters/{row_id}/replay")
        assert_problem(again, 404, "not-found")

    async def test_an_already_handled_event_is_only_removed(
        self, operator, plumbing_db, consumers
    ) -> None:
        event = sample_event(consumers.subject)
        row_id = await store(plumbing_db, consumers.ok, event)
        async with plumbing_db.unit_of_work() as session:
            await session.execute(
                insert(inbox_table).values(
                    consumer=consumers.ok, event_id=event.id, subject=event.subject
                )
            )

        response = await operator.post(f"/v1/dead-letters/{row_id}/replay")

        assert response.json() == {"id": row_id, "outcome": "duplicate"}
        assert await effect_count(plumbing_db, event.id) == 0
        assert not await exists(plumbing_db, row_id)

    async def test_a_failing_handler_is_409_and_keeps_the_dead_letter(
        self, operator, plumbing_db, consumers
    ) -> None:
        row_id = await store(plumbing_db, consumers.broken, sample_event(consumers.subject))

        response = await operator.post(f"/v1/dead-letters/{row_id}/replay")

        body = assert_problem(response, 409, "replay-failed")
        assert "downstream still broken" in body["detail"]
        assert await exists(plumbing_db, row_id)
        assert await inbox_events(plumbing_db, consumers.broken) == []

    async def test_a_consumer_that_no_longer_exists_is_409(
        self, operator, plumbing_db, consumers
    ) -> None:
        row_id = await store(plumbing_db, consumers.gone, sample_event(consumers.subject))

        response = await operator.post(f"/v1/dead-letters/{row_id}/replay")

        body = assert_problem(response, 409, "conflict")
        assert consumers.gone in body["detail"]
        assert await exists(plumbing_db, row_id)

    async def test_a_message_that_is_not_an_event_is_409(
        self, operator, plumbing_db, consumers
    ) -> None:
        row_id = await store(
            plumbing_db,
            consumers.ok,
            subject=consumers.subject,
            event_id=None,
            headers={},
            body=b"not json",
            error="bad envelope",
        )

        response = await operator.post(f"/v1/dead-letters/{row_id}/replay")

        body = assert_problem(response, 409, "conflict")
        assert "not a valid event" in body["detail"]
        assert await exists(plumbing_db, row_id)
        assert await inbox_events(plumbing_db, consumers.ok) == []


class TestDiscard:
    async def test_removes_it_for_good(self, operator, plumbing_db, consumers) -> None:
        row_id = await store(plumbing_db, consumers.ok, sample_event(consumers.subject))

        response = await operator.delete(f"/v1/dead-letters/{row_id}")

        assert response.status_code == 204
        assert response.content == b""
        assert not await exists(plumbing_db, row_id)
        assert_problem(await operator.delete(f"/v1/dead-letters/{row_id}"), 404, "not-found")


async def test_every_route_needs_the_admin_scope(operator) -> None:
    response = await operator.get("/v1/dead-letters", headers={"Authorization": "Bearer not-a-key"})
    assert_problem(response, 401, "unauthorized")
