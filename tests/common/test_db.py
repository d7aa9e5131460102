"""crm_common.db: engine, metadata naming, unit of work and the request-scoped session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import Column, ForeignKey, Index, Integer, Table, Text, UniqueConstraint, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

from crm_common.app import create_service_app
from crm_common.db import (
    NAMING_CONVENTION,
    Database,
    SessionDep,
    create_engine,
    get_session,
    make_metadata,
)
from crm_common.embedded import free_port
from crm_common.errors import Conflict
from crm_common.settings import DatabaseSettings, ServiceSettings
from crm_common.testing import TestRuntime, asgi_client


@pytest.fixture
async def scratch(database: Database) -> AsyncIterator[str]:
    """A committed throwaway schema with ``items`` (a deferred unique ``code``); dropped after."""
    schema = f"crm_test_db_{uuid.uuid4().hex[:8]}"
    async with database.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.execute(
            text(
                f"CREATE TABLE {schema}.items (id int PRIMARY KEY, code text NOT NULL,"
                " CONSTRAINT items_code_key UNIQUE (code) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield schema
    async with database.engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


async def item_ids(database: Database, schema: str) -> list[int]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT id FROM {schema}.items ORDER BY id"))
        return [r[0] for r in rows]


async def backends(database: Database, application_name: str) -> int:
    async with database.engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": application_name},
            )
            or 0
        )


async def wait_for_backends(database: Database, application_name: str, expected: int) -> int:
    count = -1
    for _ in range(100):
        count = await backends(database, application_name)
        if count == expected:
            break
        await asyncio.sleep(0.02)
    return count


def db_settings(crm_runtime: TestRuntime, **overrides: object) -> DatabaseSettings:
    return DatabaseSettings(database_url=crm_runtime.database_url, **overrides)  # type: ignore[arg-type]


class TestMakeMetadata:
    def test_schema_and_naming_convention(self) -> None:
        metadata = make_metadata("loyalty")
        assert metadata.schema == "loyalty"
        assert dict(metadata.naming_convention) == NAMING_CONVENTION

    def test_constraint_names(self) -> None:
        metadata = make_metadata("shop")
        Table("customer", metadata, Column("id", Integer, primary_key=True))
        order = Table(
            "order",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("customer_id", Integer, ForeignKey("shop.customer.id")),
            Column("number", Text),
            UniqueConstraint("number"),
            Index(None, "customer_id"),
        )
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        ddl = str(CreateTable(order).compile(dialect=dialect))
        assert "CONSTRAINT pk_order PRIMARY KEY" in ddl
        assert "CONSTRAINT uq_order_number UNIQUE" in ddl
        assert "CONSTRAINT fk_order_customer_id_customer FOREIGN KEY" in ddl
        (index,) = order.indexes
        assert "ix_shop_order_customer_id" in str(CreateIndex(index).compile(dialect=dialect))


class TestCreateEngine:
    async def test_pool_and_driver(self, crm_runtime: TestRuntime) -> None:
        engine = create_engine(db_settings(crm_runtime, db_pool_size=3, db_echo=True))
        try:
            assert engine.url.drivername == "postgresql+asyncpg"
            assert engine.pool.size() == 3  # type: ignore[attr-defined]
            assert engine.echo is True
        finally:
            await engine.dispose()

    async def test_application_name_defaults_to_service(self, crm_runtime: TestRuntime) -> None:
        engine = create_engine(db_settings(crm_runtime, service_name="dbtest-svc"))
        try:
            async with engine.connect() as conn:
                name = await conn.scalar(text("SELECT current_setting('application_name')"))
            assert name == "dbtest-svc"
        finally:
            await engine.dispose()

    async def test_explicit_application_name(self, crm_runtime: TestRuntime) -> None:
        engine = create_engine(db_settings(crm_runtime), application_name="dbtest-worker")
        try:
            async with engine.connect() as conn:
                name = await conn.scalar(text("SELECT current_setting('application_name')"))
            assert name == "dbtest-worker"
        finally:
            await engine.dispose()


async def terminate(crm_runtime: TestRuntime, pid: int) -> None:
    """End backend ``pid`` from another connection, as a restart or an idle timeout would."""
    engine = create_engine(db_settings(crm_runtime))
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await engine.dispose()


class TestClosedConnections:
    async def test_a_connection_closed_while_pooled_is_not_handed_out(
        self, crm_runtime: TestRuntime
    ) -> None:
        engine = create_engine(db_settings(crm_runtime, db_pool_size=1, db_max_overflow=0))
        try:
            async with engine.connect() as conn:
                pid = await conn.scalar(text("SELECT pg_backend_pid()"))
                driver = (await conn.get_raw_connection()).driver_connection
            await terminate(crm_runtime, pid)
            for _ in range(250):  # asyncpg notices the server's goodbye while idle
                if driver.is_closed():
                    break
                await asyncio.sleep(0.02)
            assert driver.is_closed()
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT pg_backend_pid()")) != pid
        finally:
            await engine.dispose()

    async def test_a_connection_broken_in_use_fails_once_then_the_pool_reconnects(
        self, crm_runtime: TestRuntime
    ) -> None:
        engine = create_engine(db_settings(crm_runtime, db_pool_size=1, db_max_overflow=0))
        try:
            async with engine.connect() as conn:
                pid = await conn.scalar(text("SELECT pg_backend_pid()"))
                await terminate(crm_runtime, pid)
                with pytest.raises(DBAPIError) as failure:
                    await conn.execute(text("SELECT 1"))
            assert failure.value.connection_invalidated
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT pg_backend_pid()")) != pid
        finally:
            await engine.dispose()


class TestDatabaseFromSettings:
    async def test_sessions_keep_objects_usable(self, crm_runtime: TestRuntime) -> None:
        database = Database.from_settings(db_settings(crm_runtime), application_name="dbtest-fs")
        try:
            assert database.sessionmaker.kw["expire_on_commit"] is False
            assert database.sessionmaker.kw["autoflush"] is False
            async with database.sessionmaker() as session:
                assert session.bind is database.engine
                assert await session.scalar(text("SELECT current_user")) == "postgres"
        finally:
            await database.dispose()


class TestDatabaseFromEngine:
    async def test_wraps_engine(self, database: Database) -> None:
        wrapped = Database.from_engine(database.engine)
        assert wrapped.engine is database.engine
        async with wrapped.sessionmaker() as session:
            assert await session.scalar(text("SELECT 41 + 1")) == 42


class TestUnitOfWork:
    async def test_commits_when_block_succeeds(self, database: Database, scratch: str) -> None:
        async with database.unit_of_work() as session:
            await session.execute(text(f"INSERT INTO {scratch}.items VALUES (1, 'a')"))
        assert await item_ids(database, scratch) == [1]

    async def test_rolls_back_when_block_raises(self, database: Database, scratch: str) -> None:
        async def insert_then_fail() -> None:
            async with database.unit_of_work() as session:
                await session.execute(text(f"INSERT INTO {scratch}.items VALUES (1, 'a')"))
                raise RuntimeError("nope")

        with pytest.raises(RuntimeError, match="nope"):
            await insert_then_fail()
        assert await item_ids(database, scratch) == []

    async def test_commit_failure_raises(self, database: Database, scratch: str) -> None:
        from sqlalchemy.exc import IntegrityError

        with pytest.raises(IntegrityError, match="items_code_key"):
            async with database.unit_of_work() as session:
                await session.execute(
                    text(f"INSERT INTO {scratch}.items VALUES (1, 'same'), (2, 'same')")
                )
        assert await item_ids(database, scratch) == []


class TestPing:
    async def test_reachable(self, database: Database) -> None:
        await database.ping()

    async def test_unreachable_raises(self) -> None:
        database = Database.from_settings(
            DatabaseSettings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
        )
        try:
            with pytest.raises(OSError, match="Connect call failed|refused"):
                await database.ping()
        finally:
            await database.dispose()


class TestDispose:
    async def test_closes_pooled_connections(
        self, crm_runtime: TestRuntime, database: Database
    ) -> None:
        name = f"dbtest-{uuid.uuid4().hex[:8]}"
        own = Database.from_settings(db_settings(crm_runtime), application_name=name)
        await own.ping()
        assert await backends(database, name) == 1  # returned to the pool, still open
        await own.dispose()
        assert await wait_for_backends(database, name, 0) == 0


def items_app(crm_runtime: TestRuntime, database: Database, schema: str) -> FastAPI:
    router = APIRouter()

    @router.post("/items/{item_id}", status_code=201)
    async def create(item_id: int, session: SessionDep, outcome: str = "ok") -> dict[str, int]:
        code = "dup" if outcome == "deferred" else f"c{item_id}"
        await session.execute(
            text(f"INSERT INTO {schema}.items VALUES (:id, :code)"), {"id": item_id, "code": code}
        )
        if outcome == "deferred":
            await session.execute(
                text(f"INSERT INTO {schema}.items VALUES (:id, 'dup')"), {"id": item_id + 1}
            )
        if outcome == "conflict":
            raise Conflict("already there")
        if outcome == "crash":
            raise RuntimeError("handler failed")
        return {"id": item_id}

    settings = ServiceSettings(
        service_name="dbtest",
        database_url=crm_runtime.database_url,
        nats_url=crm_runtime.nats_url,
    )
    return create_service_app(
        settings=settings, title="db", description="db", routers=[router], database=database
    )


class TestGetSession:
    async def test_commits_on_success(
        self, crm_runtime: TestRuntime, database: Database, scratch: str
    ) -> None:
        async with asgi_client(items_app(crm_runtime, database, scratch)) as client:
            response = await client.post("/items/1")
            assert response.status_code == 201
            assert await item_ids(database, scratch) == [1]

    async def test_rolls_back_on_domain_error(
        self, crm_runtime: TestRuntime, database: Database, scratch: str
    ) -> None:
        async with asgi_client(items_app(crm_runtime, database, scratch)) as client:
            response = await client.post("/items/1", params={"outcome": "conflict"})
        assert response.status_code == 409
        assert response.json()["detail"] == "already there"
        assert await item_ids(database, scratch) == []

    async def test_rolls_back_on_unhandled_error(
        self, crm_runtime: TestRuntime, database: Database, scratch: str
    ) -> None:
        async with asgi_client(items_app(crm_runtime, database, scratch)) as client:
            response = await client.post("/items/1", params={"outcome": "crash"})
        assert response.status_code == 500
        assert await item_ids(database, scratch) == []

    async def test_failed_commit_is_not_a_success(
        self, crm_runtime: TestRuntime, database: Database, scratch: str
    ) -> None:
        """The commit runs before the response: a write that fails at COMMIT is a 500."""
        async with asgi_client(items_app(crm_runtime, database, scratch)) as client:
            response = await client.post("/items/1", params={"outcome": "deferred"})
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert await item_ids(database, scratch) == []

    async def test_each_request_has_its_own_session(
        self, crm_runtime: TestRuntime, database: Database, scratch: str
    ) -> None:
        async with asgi_client(items_app(crm_runtime, database, scratch)) as client:
            first = await client.post("/items/1")
            failed = await client.post("/items/2", params={"outcome": "crash"})
            third = await client.post("/items/3")
        assert (first.status_code, failed.status_code, third.status_code) == (201, 500, 201)
        assert await item_ids(database, scratch) == [1, 3]

    def test_session_dep_uses_get_session(self) -> None:
        depends = SessionDep.__metadata__[0]
        assert depends.dependency is get_session
        assert depends.scope == "function"
