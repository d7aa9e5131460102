"""The profile schema's metadata and declarative base."""

from collections.abc import Collection
from typing import Any, cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from crm_common.db import make_metadata

SCHEMA = "profile"
metadata = make_metadata(SCHEMA)


class Base(DeclarativeBase):
    """Base of every ORM model of the profile service."""

    metadata = metadata


#: ``session.info`` key of the driver connection found for the session's current transaction.
_DRIVER = "crm_profile.driver_connection"


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``, inside the session's transaction.

    For bulk work where SQLAlchemy's per-row processing shows (COPY, look-ups of 1,000 ids).
    It bypasses autoflush: flush pending ORM changes first if the statement must see them.
    SQLAlchemy's driver adapter begins its transaction on its first statement; when none was
    issued yet, it is asked to begin now (what that statement would have done, without it).
    The connection is remembered for the rest of the transaction: the intake asks four times.
    """
    known = session.info.get(_DRIVER)
    if known is not None and known[0] is session.sync_session.get_transaction():
        return cast(asyncpg.Connection, known[1])
    connection = await session.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    driver = adapted.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    if not driver.is_in_transaction():
        await adapted._start_transaction()
    session.info[_DRIVER] = (session.sync_session.get_transaction(), driver)
    return driver


def lines(values: Collection[str]) -> str:
    """``values`` as one text parameter, read in SQL as ``string_to_array($1, E'\\n')``.

    For look-ups of up to 1,000 ids: asyncpg checks every element of a list parameter against
    ``collections.abc`` classes, which cost the API twice what the rest of the query did
    (bench/README.md). Raises ``ValueError`` for a value holding a newline (ids never do).
    """
    text = "\n".join(values)
    if text.count("\n") != max(len(values) - 1, 0):
        raise ValueError("a value holds a newline")
    return text
