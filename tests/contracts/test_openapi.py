"""OpenAPI smoke: schemathesis drives every service's documented operations.

Each service's app runs (lifespan included: schemathesis' ASGI client starts it on the first
request and its pytest plugin ends it when the test finishes) against a scratch database
migrated for the run, seeded with a few dead letters so the list endpoint returns real rows.
Every response must be a non-5xx, have a documented status code and content type (errors are
``application/problem+json``), and match its documented schema.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from starlette.types import Lifespan

from crm_common.migrations import upgrade
from crm_common.testing import TestRuntime
from tests.conftest import ADMIN_HEADERS

SERVICES = ("profile", "segment", "recommend", "notify", "loyalty")
ROOT = Path(__file__).resolve().parents[2]
#: The apps are built at import (schemathesis reads their documents then), before the scratch
#: database exists; the test plugin has already exported the session's ``DATABASE_URL``.
SCRATCH_DB = f"crm_contract_{uuid.uuid4().hex[:8]}"
SCRATCH_URL = f"{os.environ['DATABASE_URL'].rpartition('/')[0]}/{SCRATCH_DB}"
#: ``negative_data_rejection`` is left out on purpose: like most HTTP APIs these ignore unknown
#: query parameters and take the last of repeated ones, which that check counts as a failure.
#: Negative cases are still generated, so the 422 responses are checked against their schema.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
    unsupported_method,
]


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _seed(url: str) -> None:
    """A few dead letters per schema: one well-formed event, one that is not an event."""
    conn = await asyncpg.connect(_plain(url))
    try:
        for service in SERVICES:
            event_id = str(uuid.uuid4())
            headers = {
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-source": "/crm/profile",
                "ce-type": "crm.profile.customer.merged.v1",
                "ce-subject": "c-1",
                "ce-time": "2026-11-23T18:00:00+00:00",
            }
            await conn.executemany(
                f"INSERT INTO {service}.dead_letter"
                " (consumer, subject, event_id, headers, body, error, deliveries)"
                " VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)",
                [
                    (
                        f"{service}-profile-contract",
                        "crm.profile.customer.merged",
                        event_id,
                        json.dumps(headers),
                        b'{"customer_id": "c-1"}',
                        "RuntimeError: boom",
                        8,
                    ),
                    (f"{service}-junk", "crm.profile.junk.sent", None, "{}", b"\x00", "bad", 1),
                ],
            )
    finally:
        await conn.close()


@pytest.fixture(scope="module", autouse=True)
async def contract_database(crm_runtime: TestRuntime) -> AsyncIterator[None]:
    """The scratch database the apps use, with every service's migrations and a few dead letters."""
    admin = await asyncpg.connect(_plain(crm_runtime.admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{SCRATCH_DB}"')
        for service in SERVICES:  # Alembic runs its own event loop: in a thread
            await asyncio.to_thread(upgrade, ROOT / "services" / service, SCRATCH_URL)
        await _seed(SCRATCH_URL)
        yield
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def _until_ready(app: FastAPI, lifespan: Lifespan[FastAPI]) -> AsyncIterator[None]:
    """The app's own lifespan, finishing start-up only once NATS is connected (``/readyz`` 200)."""
    async with lifespan(app):
        for _ in range(750):
            if app.state.nats is not None and app.state.nats.is_connected:
                break
            await asyncio.sleep(0.02)
        else:
            raise TimeoutError("the app did not connect to NATS within 15 s")
        yield


def _conformance_test(service: str) -> Any:
    """A schemathesis test over every documented operation of ``service``'s running app."""
    settings_cls = importlib.import_module(f"crm_{service}.config").Settings
    app = importlib.import_module(f"crm_{service}.app").create_app(
        settings_cls(database_url=SCRATCH_URL)
    )
    app.router.lifespan_context = partial(_until_ready, lifespan=app.router.lifespan_context)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @schema.parametrize()
    @settings(
        max_examples=5,
        deadline=None,
        # No shrinking: schemathesis prints a curl line for the failing case as it is, and
        # shrinking a failure of a database-backed endpoint takes minutes.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow],
    )
    def test(case: Any) -> None:
        """No 5xx; status, content type, headers and body as documented; auth and methods enforced."""
        case.call_and_validate(headers=ADMIN_HEADERS, checks=CHECKS)

    return test


test_profile_api_conforms = _conformance_test("profile")
test_segment_api_conforms = _conformance_test("segment")
test_recommend_api_conforms = _conformance_test("recommend")
test_notify_api_conforms = _conformance_test("notify")
test_loyalty_api_conforms = _conformance_test("loyalty")
