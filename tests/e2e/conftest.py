"""End-to-end tier: the real profile and segment workers against the session's PostgreSQL/NATS.

Unlike the service tests, nothing here is rolled back: requests go through the profile API
with its own sessions and commit, the workers' relays publish the outbox rows and their
consumers handle them, exactly as in a deployment. Every test uses external ids of its own, so
tests never see each other's customers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import phonenumbers
import pytest
from httpx import AsyncClient
from sqlalchemy import text

from crm_common.db import Database
from crm_common.testing import asgi_client
from crm_common.worker import run_worker
from tests.conftest import ADMIN_HEADERS

T = TypeVar("T")
#: Every service schema: an erased customer must be found in none of them.
SCHEMAS = ("profile", "segment", "recommend", "notify", "loyalty")
#: Column types that can hold an identifier, an email address or a phone number.
SEARCHED_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY")


@pytest.fixture(scope="package")
async def workers(database: Database) -> AsyncIterator[list[asyncio.Task[None]]]:
    """The profile and segment workers (relays and every consumer) as asyncio tasks.

    Package-scoped: they stop when the end-to-end tests are done, so no relay publishes (and
    deletes) the outbox rows that later tests inspect. The segment worker also runs its own
    batch jobs (RFM, built-in segments) over whatever the tests committed; its schema is
    emptied afterwards so the segment tests start from a clean slate, as on a fresh install.
    """
    from crm_profile.config import Settings as ProfileSettings
    from crm_profile.worker import SPEC as PROFILE
    from crm_segment.config import Settings as SegmentSettings
    from crm_segment.worker import SPEC as SEGMENT

    profile = ProfileSettings(outbox_poll_interval_seconds=0.05, worker_metrics_port=0)
    segment = SegmentSettings(outbox_poll_interval_seconds=0.05, worker_metrics_port=0)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_worker(PROFILE, profile, stop), name="profile"),
        asyncio.create_task(run_worker(SEGMENT, segment, stop), name="segment"),
    ]
    yield tasks
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    await empty_schema(database, "segment")


async def empty_schema(database: Database, schema: str) -> None:
    """Delete every row of ``schema``'s tables (its migrations' version table excepted)."""
    async with database.unit_of_work() as session:
        names = (
            await session.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = :schema "
                    "AND tablename <> 'alembic_version'"
                ),
                {"schema": schema},
            )
        ).scalars()
        tables = ", ".join(f'"{schema}"."{name}"' for name in names)
        if tables:
            await session.execute(text(f"TRUNCATE {tables}"))


@pytest.fixture(scope="package")
async def profile_api() -> AsyncIterator[AsyncClient]:
    """The profile API with the admin key; every request commits."""
    from crm_profile.app import create_app

    async with asgi_client(create_app(), headers=ADMIN_HEADERS) as client:
        yield client


@pytest.fixture
async def erase_afterwards(profile_api: AsyncClient) -> AsyncIterator[list[str]]:
    """External ids to erase when the test ends, so the data it committed does not outlive it."""
    external_ids: list[str] = []
    yield external_ids
    for external_id in external_ids:
        response = await profile_api.delete(f"/v1/customers/{external_id}")
        assert response.status_code in (204, 404), response.text


@pytest.fixture
async def eventually(
    workers: list[asyncio.Task[None]],
) -> Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]:
    """``await eventually(check)``: retry ``check`` until it returns a truthy value (30 s)."""

    async def wait(check: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + 30
        while True:
            for task in workers:
                if task.done():
                    raise AssertionError(f"worker {task.get_name()} stopped: {task.exception()!r}")
            result = await check()
            if result:
                return result
            assert time.monotonic() < deadline, "timed out waiting for the workers"
            await asyncio.sleep(0.1)

    return wait


def new_external_id(prefix: str) -> str:
    """An external id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_phone() -> str:
    """A valid London number no other test uses, in E.164."""
    while True:
        candidate = f"+44207{uuid.uuid4().int % 10**7:07d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
            return candidate


async def row(database: Database, sql: str, **params: Any) -> dict[str, Any] | None:
    """The first row of ``sql`` as a dict, or ``None``."""
    async with database.engine.connect() as conn:
        found = (await conn.execute(text(sql), params)).mappings().first()
    return dict(found) if found is not None else None


async def find_everywhere(database: Database, needles: list[str]) -> list[str]:
    """``schema.table.column`` of every value in every service schema containing a needle.

    Every text, JSON, array and binary column of every table is searched (outbox payloads and
    dead-letter bodies are ``bytea``), so a table added later is covered without a change here.
    """
    found: list[str] = []
    async with database.engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT c.table_schema, c.table_name, c.column_name, c.data_type"
                    " FROM information_schema.columns c JOIN information_schema.tables t"
                    " USING (table_schema, table_name)"
                    " WHERE c.table_schema = ANY(:schemas) AND t.table_type = 'BASE TABLE'"
                    " AND c.data_type = ANY(:types)"
                ),
                {"schemas": list(SCHEMAS), "types": list(SEARCHED_TYPES)},
            )
        ).all()
        assert {c.table_schema for c in columns} == set(SCHEMAS)
        params = {f"n{i}": needle for i, needle in enumerate(needles)}
        for schema, table, column, data_type in columns:
            name = f'"{schema}"."{table}"."{column}"'
            if data_type == "bytea":
                tests = [f"position(convert_to(:{p}, 'UTF8') in {name}) > 0" for p in params]
            else:
                tests = [f"strpos({name}::text, :{p}) > 0" for p in params]
            sql = f'SELECT count(*) FROM "{schema}"."{table}" WHERE {" OR ".join(tests)}'
            if (await conn.execute(text(sql), params)).scalar_one():
                found.append(f"{schema}.{table}.{column}")
    return found
