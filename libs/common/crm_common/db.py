"""Async SQLAlchemy plumbing: engine, sessions, per-schema metadata, unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from crm_common.settings import DatabaseSettings

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "SessionDep",
    "create_engine",
    "get_session",
    "make_metadata",
]

#: Constraint names that stay stable across autogenerate runs (Alembic's recommended set).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata(schema: str) -> MetaData:
    """Metadata bound to one service's schema, with the house naming convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool ``checkout`` hook: a connection its driver knows to be closed is replaced.

    asyncpg reads its socket while the connection idles in the pool, so a backend that was
    terminated, timed out or restarted is marked closed before it is handed out; SQLAlchemy
    then discards it and checks out another (a fresh one when none is left).
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")


def create_engine(
    settings: DatabaseSettings, *, application_name: str | None = None
) -> AsyncEngine:
    """Create the asyncpg engine with a bounded pool that never hands out a closed connection.

    No pre-ping: it cost a ``BEGIN`` / ``;`` / ``ROLLBACK`` on every checkout (bench/README.md),
    and a connection closed by the server is already known to asyncpg (``_refuse_closed``). One
    that breaks while in use fails its statement; SQLAlchemy sees the disconnect and invalidates
    the pool's connections, so the following checkouts connect afresh.
    """
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        echo=settings.db_echo,
        connect_args={
            "server_settings": {"application_name": application_name or settings.service_name}
        },
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


@dataclass
class Database:
    """An engine and its session factory; one per process."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def from_settings(
        cls, settings: DatabaseSettings, *, application_name: str | None = None
    ) -> Database:
        """Build the engine and a sessionmaker that keeps objects usable after commit."""
        engine = create_engine(settings, application_name=application_name)
        return cls.from_engine(engine)

    @classmethod
    def from_engine(cls, engine: AsyncEngine) -> Database:
        """Wrap an existing engine."""
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False, autoflush=False))

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction: commit when the block succeeds, roll back when it raises."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Run ``SELECT 1``; raises when the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Request-scoped session: commits when the handler succeeds, rolls back when it raises.

    Declared with ``scope="function"`` (see ``SessionDep``) so the commit happens before the
    response is sent: a client never sees a success for a write that failed to commit.
    """
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
