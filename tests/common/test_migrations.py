"""Every service's Alembic tree: reversible, confined to its own schema, in step with its models.

Each service gets a scratch database of its own: upgrade to head, downgrade to base, upgrade
again. Nothing may appear outside the service's schema (compared through
``information_schema`` against the empty database), and autogenerate must find no difference
between the migrated schema and the ORM metadata.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from crm_common.migrations import alembic_config
from crm_common.testing import TestRuntime

SERVICES = ["profile", "segment", "recommend", "notify", "loyalty"]
ROOT = Path(__file__).resolve().parents[2]
#: Tables every service's first revision creates.
MESSAGING_TABLES = {"outbox", "inbox", "dead_letter"}


def plain(url: str) -> str:
    """asyncpg wants ``postgresql://``."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
async def scratch_url(crm_runtime: TestRuntime) -> AsyncIterator[str]:
    """An empty database of the test's own, dropped afterwards."""
    name = f"crm_migrations_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain(crm_runtime.admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{crm_runtime.admin_url.rpartition('/')[0]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def fetch(url: str, sql: str, *args: Any) -> set[tuple[Any, ...]]:
    """Rows of one query, as a set of tuples."""
    conn = await asyncpg.connect(plain(url))
    try:
        return {tuple(r) for r in await conn.fetch(sql, *args)}
    finally:
        await conn.close()


async def outside(url: str, schema: str) -> dict[str, set[tuple[Any, ...]]]:
    """What ``information_schema`` shows outside ``schema`` (and the system catalogs)."""
    system = ["pg_catalog", "information_schema", "pg_toast", schema]
    return {
        "schemata": await fetch(
            url,
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name <> $1",
            schema,
        ),
        "tables": await fetch(
            url,
            "SELECT table_schema, table_name, table_type FROM information_schema.tables"
            " WHERE table_schema <> ALL($1::text[])",
            system,
        ),
        "columns": await fetch(
            url,
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema <> ALL($1::text[])",
            system,
        ),
        "routines": await fetch(
            url,
            "SELECT routine_schema, routine_name FROM information_schema.routines"
            " WHERE routine_schema <> ALL($1::text[])",
            system,
        ),
        "sequences": await fetch(
            url,
            "SELECT sequence_schema, sequence_name FROM information_schema.sequences"
            " WHERE sequence_schema <> ALL($1::text[])",
            system,
        ),
        "types": await fetch(
            url,
            "SELECT user_defined_type_schema, user_defined_type_name"
            " FROM information_schema.user_defined_types"
            " WHERE user_defined_type_schema <> ALL($1::text[])",
            system,
        ),
        "extensions": await fetch(url, "SELECT extname FROM pg_extension"),
    }


async def tables_in(url: str, schema: str) -> set[str]:
    rows = await fetch(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    return {r[0] for r in rows}


def metadata_of(service: str) -> MetaData:
    """The service's ORM metadata (``models`` imports every model)."""
    return importlib.import_module(f"crm_{service}.models").metadata  # type: ignore[no-any-return]


async def autogenerate_diff(url: str, schema: str, metadata: MetaData) -> list[Any]:
    """What ``alembic revision --autogenerate`` would write, restricted like the service's env.py."""

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return name == schema if type_ == "schema" else True

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": include_name,
                "version_table_schema": schema,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
async def test_upgrade_downgrade_upgrade_stays_in_its_schema(
    service: str, scratch_url: str
) -> None:
    config = alembic_config(ROOT / "services" / service, scratch_url)
    metadata = metadata_of(service)
    schema = metadata.schema
    assert schema == service
    modelled = {table.name for table in metadata.tables.values()}
    assert modelled >= MESSAGING_TABLES
    before = await outside(scratch_url, schema)

    # Alembic's commands run their own event loop: off this one, in a thread.
    await asyncio.to_thread(command.upgrade, config, "heads")
    assert await tables_in(scratch_url, schema) == modelled | {"alembic_version"}
    assert await outside(scratch_url, schema) == before
    assert await autogenerate_diff(scratch_url, schema, metadata) == []

    await asyncio.to_thread(command.downgrade, config, "base")
    assert await tables_in(scratch_url, schema) == {"alembic_version"}
    assert await fetch(scratch_url, f'SELECT version_num FROM "{schema}".alembic_version') == set()
    assert await outside(scratch_url, schema) == before

    await asyncio.to_thread(command.upgrade, config, "heads")
    assert await tables_in(scratch_url, schema) == modelled | {"alembic_version"}
    assert await outside(scratch_url, schema) == before
    assert await autogenerate_diff(scratch_url, schema, metadata) == []
