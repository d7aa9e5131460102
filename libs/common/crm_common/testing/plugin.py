"""pytest plugin: one PostgreSQL + NATS runtime per session, migrated, plus isolation fixtures.

Servers start in ``pytest_configure`` (before test modules are imported) and their URLs are put
in ``DATABASE_URL`` / ``NATS_URL``, so each service's settings see them at import time. When
those variables are already set, the session creates a fresh database on that server instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest
from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

if TYPE_CHECKING:  # imported where used: ``-p`` loads this module before coverage starts
    from crm_common.db import Database
    from crm_common.testing.runtime import TestRuntime

__all__ = [
    "crm_runtime",
    "database",
    "nats_client",
    "pytest_addoption",
    "pytest_load_initial_conftests",
    "session",
]

_runtime: TestRuntime | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    """``crm_service_dirs``: service directories whose migrations the session applies."""
    parser.addini(
        "crm_service_dirs", "service directories holding alembic.ini", type="linelist", default=[]
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Start the runtime before any conftest is imported.

    ``pytest tests/profile`` imports ``tests/profile/conftest.py`` (and through it the service's
    settings) before ``pytest_configure``, so the URLs must be in the environment by then.
    """
    global _runtime
    known = early_config.known_args_namespace
    if (
        getattr(known, "collectonly", False)
        or getattr(known, "help", False)
        or getattr(known, "version", False)
    ):
        return
    from crm_common.testing.runtime import TestRuntime

    root = Path(str(early_config.rootpath))
    dirs = [root / d for d in early_config.getini("crm_service_dirs")]
    _runtime = TestRuntime(service_dirs=dirs)
    early_config.add_cleanup(_stop)
    _runtime.start()
    os.environ["DATABASE_URL"] = _runtime.database_url
    os.environ["NATS_URL"] = _runtime.nats_url


def _stop() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.stop()
        _runtime = None


@pytest.fixture(scope="session")
def crm_runtime() -> TestRuntime:
    """The session's servers (``.nats`` is the embedded NATS, for restart tests, when there is one)."""
    assert _runtime is not None, "the crm runtime did not start"
    return _runtime


@pytest.fixture(scope="session")
async def database(crm_runtime: TestRuntime) -> AsyncIterator[Database]:
    """An engine on the session database."""
    from crm_common.db import Database

    engine = create_async_engine(crm_runtime.database_url, pool_size=5, max_overflow=20)
    db = Database.from_engine(engine)
    yield db
    await db.dispose()


@pytest.fixture
async def session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is rolled back after the test."""
    async with database.engine.connect() as conn:
        outer = await conn.begin()
        db_session = AsyncSession(
            bind=conn,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        try:
            yield db_session
        finally:
            await db_session.close()
            await outer.rollback()


@pytest.fixture(scope="session")
async def nats_client(crm_runtime: TestRuntime) -> AsyncIterator[NATS]:
    """A NATS connection for the session."""
    nc = await nats.connect(
        crm_runtime.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    yield nc
    await nc.close()
