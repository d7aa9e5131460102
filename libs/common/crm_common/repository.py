"""Repository base with keyset (cursor) pagination."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Select, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute

from crm_common.errors import InvalidCursor

__all__ = ["Page", "RepositoryBase", "decode_cursor", "encode_cursor"]

M = TypeVar("M", bound=DeclarativeBase)


def encode_cursor(values: Sequence[Any]) -> str:
    """Opaque, URL-safe cursor for the sort key of the last row of a page."""
    raw = orjson.dumps([v.isoformat() if isinstance(v, date) else v for v in values], default=str)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """Decode a cursor made by :func:`encode_cursor`; raises ``InvalidCursor`` when malformed."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(values, list) or len(values) != size:
        raise InvalidCursor()
    return values


#: Column types a cursor holds as text (``encode_cursor`` writes them so).
_AS_TEXT: dict[type, Callable[[str], Any]] = {
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    uuid.UUID: uuid.UUID,
}


def _coerce(column: InstrumentedAttribute[Any], value: Any) -> Any:
    """Turn a cursor value back into the column's Python type (asyncpg binds strictly).

    A value of another type than the column's (a number for a time, a list, an integer beyond
    64 bits) is an ``InvalidCursor``, not a statement the driver refuses later.
    """
    try:
        python_type = column.type.python_type
    except NotImplementedError:  # pragma: no cover - every paginated column type has one
        return value
    parse = _AS_TEXT.get(python_type)
    if parse is not None:
        if not isinstance(value, str):
            raise InvalidCursor()
        try:
            return parse(value)
        except ValueError as exc:
            raise InvalidCursor() from exc
    if python_type is int and not (type(value) is int and -(2**63) <= value < 2**63):
        raise InvalidCursor()
    if python_type is str and not isinstance(value, str):
        raise InvalidCursor()
    return value


@dataclass
class Page(Generic[M]):
    """One page of rows and the cursor of the next page, if there is one."""

    items: list[M]
    next_cursor: str | None


class RepositoryBase(Generic[M]):
    """The only place that writes SQL for a model; holds the caller's session."""

    model: type[M]

    def __init__(self, session: AsyncSession) -> None:
        """Keep the session; repositories never commit."""
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> RepositoryBase[M]:
        """Build a repository on ``session``."""
        return cls(session)

    async def get_one_or_none(self, statement: Select[tuple[M]]) -> M | None:
        """First row of ``statement`` or ``None``."""
        result = await self.session.execute(statement)
        return result.scalars().first()

    async def get_all(self, statement: Select[tuple[M]]) -> list[M]:
        """Every row of ``statement``."""
        result = await self.session.execute(statement)
        return list(result.scalars().all())

    def select(self) -> Select[tuple[M]]:
        """``SELECT`` of the repository's model."""
        return select(self.model)

    async def paginate(
        self,
        statement: Select[tuple[M]],
        *,
        order_by: Sequence[InstrumentedAttribute[Any]],
        cursor: str | None,
        limit: int,
    ) -> Page[M]:
        """Keyset pagination over ``order_by`` (ascending; the last column must be unique)."""
        if cursor is not None:
            values = decode_cursor(cursor, len(order_by))
            typed = [
                literal(_coerce(col, v), type_=col.type)
                for col, v in zip(order_by, values, strict=True)
            ]
            statement = statement.where(tuple_(*order_by) > tuple_(*typed))
        statement = statement.order_by(*order_by).limit(limit + 1)
        rows = await self.get_all(statement)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor([getattr(last, col.key) for col in order_by])
        return Page(rows, next_cursor)
