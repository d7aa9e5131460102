"""What every service's API shares: probes, metrics, docs, problem+json errors, dead letters.

Each service's real app runs (lifespan included) against the session's PostgreSQL and NATS.
The dead-letter operator API is exercised end to end on the loyalty service with test
subscriptions whose handlers write to a temporary table of the test's own transaction.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.app import create_service_app
from crm_common.auth import hash_api_key
from crm_common.db import get_session
from crm_common.deadletters import dead_letter_router
from crm_common.events import Envelope, EventType, Subscription
from crm_common.repository import encode_cursor
from crm_common.testing import asgi_client
from crm_loyalty.config import settings as loyalty_settings
from crm_loyalty.models import dead_letter_table, inbox_table
from tests.conftest import ADMIN_HEADERS

SERVICES = ["profile", "segment", "recommend", "notify", "loyalty"]
READER_KEY = "reader-key-without-admin"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


def build_app(service: str, **settings: Any) -> FastAPI:
    """``crm_<service>.app.create_app()``, with settings overridden when given."""
    app_module = importlib.import_module(f"crm_{service}.app")
    if not settings:
        return app_module.create_app()  # type: ignore[no-any-return]
    settings_cls = importlib.import_module(f"crm_{service}.config").Settings
    return app_module.create_app(settings_cls(**settings))  # type: ignore[no-any-return]


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status`` and type ``urn:crm:problem:<slug>``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS
    assert body["type"] == f"urn:crm:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["instance"] == response.request.url.path
    return body


@pytest.fixture(params=SERVICES)
def service(request: pytest.FixtureRequest) -> str:
    """Each service in turn."""
    return str(request.param)


@pytest.fixture
async def client(service: str, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """Anonymous client of the service's app, requests inside the test's rolled-back transaction."""
    async with asgi_client(build_app(service), session=session) as c:
        yield c


class TestProbes:
    async def test_healthz_is_ok(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"

    async def test_readyz_reports_database_and_nats(self, client: httpx.AsyncClient) -> None:
        # The lifespan connects to NATS in the background; readiness follows within moments.
        for _ in range(100):
            response = await client.get("/readyz")
            if response.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok", "checks": {"database": "ok", "nats": "ok"}}

    async def test_metrics_count_requests(self, client: httpx.AsyncClient, service: str) -> None:
        await client.get("/healthz")
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert any(
            line.startswith("crm_http_requests_total{") and f'service="{service}"' in line
            for line in response.text.splitlines()
        )

    async def test_openapi_and_docs_are_served(self, client: httpx.AsyncClient) -> None:
        document = await client.get("/openapi.json")
        assert document.status_code == 200
        assert "/v1/dead-letters" in document.json()["paths"]
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "swagger-ui" in docs.text


class TestProblems:
    async def test_401_without_key(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/dead-letters")
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_401_unknown_key(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            "/v1/dead-letters", headers={"Authorization": "Bearer not-a-key"}
        )
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_403_key_without_admin_scope(self, service: str, session: AsyncSession) -> None:
        keys = [
            {"name": "reader", "sha256": hash_api_key(READER_KEY), "scopes": [f"{service}:read"]}
        ]
        app = build_app(service, api_keys=keys)
        async with asgi_client(
            app, session=session, headers={"Authorization": f"Bearer {READER_KEY}"}
        ) as reader:
            response = await reader.get("/v1/dead-letters")
        body = assert_problem(response, 403, "forbidden")
        assert f"{service}:admin" in body["detail"]

    async def test_404_unknown_route(self, client: httpx.AsyncClient) -> None:
        assert_problem(await client.get("/v1/no-such-thing"), 404, "not-found")

    async def test_404_unknown_dead_letter(self, client: httpx.AsyncClient) -> None:
        response = await client.delete("/v1/dead-letters/987654321", headers=ADMIN_HEADERS)
        assert_problem(response, 404, "not-found")

    async def test_405_wrong_method(self, client: httpx.AsyncClient) -> None:
        response = await client.put("/v1/dead-letters", headers=ADMIN_HEADERS)
        assert_problem(response, 405, "method-not-allowed")
        assert "GET" in response.headers["allow"]

    async def test_422_names_the_bad_query_parameter(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/dead-letters?limit=0", headers=ADMIN_HEADERS)
        body = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in body["errors"]] == ["query.limit"]
        assert body["errors"][0]["reason"]

    async def test_500_unhandled_error(self, service: str, session: AsyncSession) -> None:
        app = build_app(service)

        async def explode() -> None:
            raise RuntimeError("kaboom: internal detail that must not leak")

        app.add_api_route("/v1/explode", explode)
        async with asgi_client(app, session=session) as c:
            response = await c.get("/v1/explode")
        body = assert_problem(response, 500, "internal-error")
        assert "kaboom" not in response.text
        assert body["detail"] == "An unexpected error occurred"

    async def test_400_malformed_cursor(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/dead-letters?cursor=%21%21not-ours", headers=ADMIN_HEADERS)
        assert_problem(response, 400, "invalid-cursor")

    @pytest.mark.parametrize("position", ["abc", None, 2**63, -1, 1.5])
    async def test_400_forged_cursor(self, client: httpx.AsyncClient, position: object) -> None:
        # Well-formed cursors that cannot have come from this list: refused, not a 500.
        response = await client.get(
            "/v1/dead-letters", params={"cursor": encode_cursor([position])}, headers=ADMIN_HEADERS
        )
        assert_problem(response, 400, "invalid-cursor")

    async def test_422_dead_letter_id_beyond_bigint(self, client: httpx.AsyncClient) -> None:
        response = await client.delete(f"/v1/dead-letters/{2**63}", headers=ADMIN_HEADERS)
        body = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in body["errors"]] == ["path.dead_letter_id"]


# --- the dead-letter operator API, end to end on one service ------------------------------------


class CustomerMerged(BaseModel):
    """A producer's payload, as a consumer would receive it."""

    customer_id: str
    merged_into: str


MERGED = EventType("crm.profile.customer.merged", CustomerMerged)
OK_CONSUMER = "loyalty-test-merges"
FAILING_CONSUMER = "loyalty-test-broken"


async def record_merge(session: AsyncSession, envelope: Envelope) -> None:
    """The test handler's effect: one row per event in the transaction's temporary table."""
    payload = CustomerMerged.model_validate(envelope.data)
    await session.execute(
        text("INSERT INTO replay_effect (event_id, customer_id) VALUES (:id, :customer)"),
        {"id": envelope.id, "customer": payload.customer_id},
    )


async def still_broken(session: AsyncSession, envelope: Envelope) -> None:
    """A handler that keeps failing."""
    raise RuntimeError("downstream still broken")


SUBSCRIPTIONS = [
    Subscription(MERGED.subject, OK_CONSUMER, record_merge),
    Subscription(MERGED.subject, FAILING_CONSUMER, still_broken),
]


@pytest.fixture
async def operator(session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """Admin client of a loyalty app serving the test subscriptions' dead letters.

    Each request runs in a savepoint of the test's transaction, released on success and rolled
    back when the handler raises: the same all-or-nothing a real request's commit gives.
    """
    await session.execute(
        text("CREATE TEMP TABLE replay_effect (event_id uuid PRIMARY KEY, customer_id text)")
    )
    app = create_service_app(
        settings=loyalty_settings,
        title="loyalty (dead-letter test)",
        description="",
        routers=[dead_letter_router("loyalty", dead_letter_table, inbox_table, SUBSCRIPTIONS)],
    )

    async def request_session() -> AsyncIterator[AsyncSession]:
        async with session.begin_nested():
            yield session

    app.dependency_overrides[get_session] = request_session
    async with asgi_client(app, headers=ADMIN_HEADERS) as c:
        yield c


async def dead_letter(session: AsyncSession, consumer: str, customer_id: str) -> tuple[int, str]:
    """Store a real CloudEvents message as ``consumer``'s dead letter; its id and event id."""
    envelope = MERGED.envelope(
        CustomerMerged(customer_id=customer_id, merged_into="c-keep"), subject_id=customer_id
    )
    row_id = await session.scalar(
        insert(dead_letter_table)
        .values(
            consumer=consumer,
            subject=envelope.subject,
            event_id=str(envelope.id),
            headers=envelope.headers(),
            body=envelope.body(),
            error="RuntimeError: database was down",
            deliveries=8,
        )
        .returning(dead_letter_table.c.id)
    )
    assert row_id is not None
    return row_id, str(envelope.id)


async def inbox_rows(session: AsyncSession, consumer: str) -> list[str]:
    rows = await session.execute(
        select(inbox_table.c.event_id).where(inbox_table.c.consumer == consumer)
    )
    return [str(r[0]) for r in rows]


async def dead_letter_ids(session: AsyncSession) -> set[int]:
    return set((await session.scalars(select(dead_letter_table.c.id))).all())


class TestDeadLetterOperatorApi:
    async def test_lists_oldest_first_in_pages(
        self, operator: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        ids = [(await dead_letter(session, OK_CONSUMER, f"c-{i}"))[0] for i in range(3)]
        await dead_letter(session, FAILING_CONSUMER, "c-other")

        first = await operator.get("/v1/dead-letters", params={"consumer": OK_CONSUMER, "limit": 2})
        assert first.status_code == 200, first.text
        page = first.json()
        assert [item["id"] for item in page["items"]] == ids[:2]
        item = page["items"][0]
        assert item["consumer"] == OK_CONSUMER
        assert item["subject"] == "crm.profile.customer.merged"
        assert item["headers"]["ce-type"] == "crm.profile.customer.merged.v1"
        assert item["event_id"] == item["headers"]["ce-id"]
        assert item["deliveries"] == 8
        assert page["next_cursor"]

        second = await operator.get(
            "/v1/dead-letters",
            params={"consumer": OK_CONSUMER, "limit": 2, "cursor": page["next_cursor"]},
        )
        assert second.status_code == 200
        assert [item["id"] for item in second.json()["items"]] == ids[2:]
        assert second.json()["next_cursor"] is None

    async def test_replay_applies_the_handler_once(
        self, operator: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        row_id, event_id = await dead_letter(session, OK_CONSUMER, "c-42")

        response = await operator.post(f"/v1/dead-letters/{row_id}/replay")

        assert response.status_code == 200, response.text
        assert response.json() == {"id": row_id, "outcome": "handled"}
        effects = (
            await session.execute(text("SELECT event_id, customer_id FROM replay_effect"))
        ).all()
        assert [(str(e), c) for e, c in effects] == [(event_id, "c-42")]
        assert await inbox_rows(session, OK_CONSUMER) == [event_id]
        assert row_id not in await dead_letter_ids(session)
        again = await operator.post(f"/v1/dead-letters/{row_id}/replay")
        assert_problem(again, 404, "not-found")

    async def test_replay_of_an_already_handled_event_only_removes_it(
        self, operator: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        row_id, event_id = await dead_letter(session, OK_CONSUMER, "c-7")
        await session.execute(
            insert(inbox_table).values(
                consumer=OK_CONSUMER, event_id=uuid.UUID(event_id), subject=MERGED.subject
            )
        )

        response = await operator.post(f"/v1/dead-letters/{row_id}/replay")

        assert response.json() == {"id": row_id, "outcome": "duplicate"}
        assert (await session.execute(text("SELECT count(*) FROM replay_effect"))).scalar() == 0
        assert row_id not in await dead_letter_ids(session)

    async def test_failing_replay_is_409_and_keeps_the_dead_letter(
        self, operator: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        row_id, _ = await dead_letter(session, FAILING_CONSUMER, "c-13")

        response = await operator.post(f"/v1/dead-letters/{row_id}/replay")

        body = assert_problem(response, 409, "replay-failed")
        assert "downstream still broken" in body["detail"]
        assert row_id in await dead_letter_ids(session)
        assert await inbox_rows(session, FAILING_CONSUMER) == []

    async def test_discard_removes_it_for_good(
        self, operator: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        row_id, _ = await dead_letter(session, OK_CONSUMER, "c-99")

        response = await operator.delete(f"/v1/dead-letters/{row_id}")

        assert response.status_code == 204
        assert response.content == b""
        assert row_id not in await dead_letter_ids(session)
        assert_problem(await operator.delete(f"/v1/dead-letters/{row_id}"), 404, "not-found")
        assert_problem(await operator.post(f"/v1/dead-letters/{row_id}/replay"), 404, "not-found")
