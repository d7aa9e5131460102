"""The profile schema's metadata and declarative base."""

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from crm_common.db import make_metadata

SCHEMA = "profile"
metadata = make_metadata(SCHEMA)


class Base(DeclarativeBase):
    """Base of every ORM model of the profile service."""

    metadata = metadata


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``, inside the session's transaction.

    For bulk work where SQLAlchemy's per-row processing shows (COPY, look-ups of 1,000 ids).
    It bypasses autoflush: flush pending ORM changes first if the statement must see them.
    SQLAlchemy begins its transaction on its first statement, so one is issued if none was.
    """
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert isinstance(driver, asyncpg.Connection)
    if not driver.is_in_transaction():
        await connection.exec_driver_sql("SELECT 1")
    return driver
