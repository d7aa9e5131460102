"""crm_common.repository: the repository base and keyset pagination with opaque cursors."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import orjson
import pytest
from fastapi import FastAPI, Query
from sqlalchemy import DateTime, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_common.db import SessionDep, make_metadata
from crm_common.errors import InvalidCursor, install_error_handlers
from crm_common.repository import Page, RepositoryBase, decode_cursor, encode_cursor
from crm_common.testing import asgi_client

SCHEMA = "crm_test_repository"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = make_metadata(SCHEMA)


class Item(Base):
    __tablename__ = "item"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rank: Mapped[int]
    day: Mapped[date]
    name: Mapped[str]


class ItemRepository(RepositoryBase[Item]):
    model = Item


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


@pytest.fixture
async def items(session: AsyncSession) -> list[Item]:
    """Ten rows in a schema created inside the test's rolled-back transaction.

    Ranks and days repeat (ties broken by ``id``); ids do not follow creation order.
    """
    await session.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    await session.execute(
        text(
            f"CREATE TABLE {SCHEMA}.item (id uuid PRIMARY KEY, created_at timestamptz NOT NULL,"
            " rank int NOT NULL, day date NOT NULL, name text NOT NULL)"
        )
    )
    rows = [
        Item(
            id=uid((n * 7) % 10 + 1),
            created_at=T0 + timedelta(minutes=n),
            rank=n // 3,
            day=date(2025, 1, 1) + timedelta(days=n // 4),
            name=f"item-{9 - n}",
        )
        for n in range(10)
    ]
    session.add_all(rows)
    await session.flush()
    return rows


async def all_pages(
    repo: ItemRepository, order_by: list[Any], limit: int, **where: Any
) -> list[Page[Item]]:
    statement = repo.select()
    if "min_rank" in where:
        statement = statement.where(Item.rank >= where["min_rank"])
    pages = [await repo.paginate(statement, order_by=order_by, cursor=None, limit=limit)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 20, "pagination does not terminate"
        pages.append(
            await repo.paginate(
                statement, order_by=order_by, cursor=pages[-1].next_cursor, limit=limit
            )
        )
    return pages


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class TestEncodeCursor:
    def test_opaque_and_url_safe(self) -> None:
        cursor = encode_cursor([T0, uid(255), 3, "a/b+c"])
        assert "=" not in cursor
        assert set(cursor) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )

    def test_round_trip(self) -> None:
        values = [T0, date(2025, 1, 2), uid(7), 42, "x", None]
        assert decode_cursor(encode_cursor(values), 6) == [
            "2025-03-01T12:00:00+00:00",
            "2025-01-02",
            str(uid(7)),
            42,
            "x",
            None,
        ]

    def test_other_types_as_strings(self) -> None:
        from decimal import Decimal

        assert decode_cursor(encode_cursor([Decimal("1.50")]), 1) == ["1.50"]


class TestDecodeCursor:
    @pytest.mark.parametrize(
        "cursor",
        [
            "a",  # impossible base64 length
            "!!!!",  # no base64 characters at all
            b64(b"not json"),
            b64(b'{"a": 1}'),  # JSON, but not a list
            b64(b"[1, 2, 3]"),  # wrong number of values
            b64(b'"text"'),
        ],
    )
    def test_tampered(self, cursor: str) -> None:
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, 2)

    def test_padding_is_optional(self) -> None:
        assert decode_cursor(b64(b"[1]"), 1) == [1]
        assert decode_cursor(base64.urlsafe_b64encode(b"[1]").decode(), 1) == [1]


class TestRepositoryBase:
    async def test_from_session(self, session: AsyncSession) -> None:
        repo = ItemRepository.from_session(session)
        assert isinstance(repo, ItemRepository)
        assert repo.session is session

    async def test_get_one_or_none(self, session: AsyncSession, items: list[Item]) -> None:
        repo = ItemRepository(session)
        found = await repo.get_one_or_none(repo.select().where(Item.id == uid(1)))
        assert found is items[0]
        assert await repo.get_one_or_none(repo.select().where(Item.id == uid(99))) is None

    async def test_get_all(self, session: AsyncSession, items: list[Item]) -> None:
        repo = ItemRepository(session)
        rows = await repo.get_all(repo.select().where(Item.rank == 0).order_by(Item.id))
        assert [r.id for r in rows] == sorted(i.id for i in items[:3])

    async def test_select_is_the_model(self, session: AsyncSession) -> None:
        statement = ItemRepository(session).select()
        assert statement.column_descriptions[0]["entity"] is Item


class TestPaginate:
    @pytest.mark.parametrize(
        ("order_by", "key"),
        [
            ([Item.created_at, Item.id], lambda i: (i.created_at, i.id)),
            ([Item.rank, Item.id], lambda i: (i.rank, i.id)),
            ([Item.id], lambda i: (i.id,)),
            ([Item.day, Item.id], lambda i: (i.day, i.id)),
            ([Item.name, Item.id], lambda i: (i.name, i.id)),
        ],
        ids=["datetime", "int", "uuid", "date", "text"],
    )
    @pytest.mark.parametrize("limit", [1, 3, 4, 10, 11])
    async def test_every_row_once_in_order(
        self,
        session: AsyncSession,
        items: list[Item],
        order_by: list[Any],
        key: Any,
        limit: int,
    ) -> None:
        pages = await all_pages(ItemRepository(session), order_by, limit)
        seen = [i.id for page in pages for i in page.items]
        assert seen == [i.id for i in sorted(items, key=key)]
        assert all(len(page.items) == limit for page in pages[:-1])
        assert 1 <= len(pages[-1].items) <= limit
        assert pages[-1].next_cursor is None
        assert len(pages) == -(-len(items) // limit)

    async def test_filter_is_kept_across_pages(
        self, session: AsyncSession, items: list[Item]
    ) -> None:
        pages = await all_pages(ItemRepository(session), [Item.rank, Item.id], 2, min_rank=2)
        seen = [i.id for page in pages for i in page.items]
        assert seen == [i.id for i in sorted(items[6:], key=lambda i: (i.rank, i.id))]

    async def test_empty(self, session: AsyncSession, items: list[Item]) -> None:
        repo = ItemRepository(session)
        page = await repo.paginate(
            repo.select().where(Item.rank > 100), order_by=[Item.id], cursor=None, limit=5
        )
        assert page == Page([], None)

    async def test_cursor_past_the_end(self, session: AsyncSession, items: list[Item]) -> None:
        repo = ItemRepository(session)
        cursor = encode_cursor([uid(10**6)])
        page = await repo.paginate(repo.select(), order_by=[Item.id], cursor=cursor, limit=5)
        assert page == Page([], None)

    @pytest.mark.parametrize(
        ("order_by", "values"),
        [
            ([Item.id], ["not-a-uuid"]),
            ([Item.created_at, Item.id], ["yesterday", str(uid(1))]),
            ([Item.day, Item.id], ["2025-13-45", str(uid(1))]),
            ([Item.created_at, Item.id], [1_700_000_000, str(uid(1))]),
            ([Item.id], [None]),
            ([Item.id], [[str(uid(1))]]),
            ([Item.rank, Item.id], [2**64 - 1, str(uid(1))]),
            ([Item.rank, Item.id], [1.5, str(uid(1))]),
            ([Item.rank, Item.id], [True, str(uid(1))]),
            ([Item.rank, Item.id], ["1", str(uid(1))]),
            ([Item.name, Item.id], [1, str(uid(1))]),
        ],
        ids=[
            "uuid",
            "datetime",
            "date",
            "number-for-time",
            "null",
            "list",
            "int-beyond-64-bits",
            "float-for-int",
            "bool-for-int",
            "text-for-int",
            "number-for-text",
        ],
    )
    async def test_values_of_the_wrong_type(
        self, session: AsyncSession, items: list[Item], order_by: list[Any], values: list[Any]
    ) -> None:
        repo = ItemRepository(session)
        cursor = b64(orjson.dumps(values))
        with pytest.raises(InvalidCursor):
            await repo.paginate(repo.select(), order_by=order_by, cursor=cursor, limit=2)

    async def test_cursor_for_another_sort(self, session: AsyncSession, items: list[Item]) -> None:
        repo = ItemRepository(session)
        page = await repo.paginate(
            repo.select(), order_by=[Item.rank, Item.id], cursor=None, limit=2
        )
        assert page.next_cursor is not None
        with pytest.raises(InvalidCursor):
            await repo.paginate(repo.select(), order_by=[Item.id], cursor=page.next_cursor, limit=2)


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    async def list_items(
        session: SessionDep,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 3,
    ) -> dict[str, Any]:
        repo = ItemRepository(session)
        page = await repo.paginate(
            repo.select(), order_by=[Item.created_at, Item.id], cursor=cursor, limit=limit
        )
        return {"ids": [str(i.id) for i in page.items], "next": page.next_cursor}

    install_error_handlers(app)
    return app


@pytest.fixture
async def client(session: AsyncSession, items: list[Item]) -> AsyncIterator[Any]:
    async with asgi_client(make_app(), session=session) as client:
        yield client


class TestPaginationOverHttp:
    async def test_pages(self, client: Any, items: list[Item]) -> None:
        ids: list[str] = []
        cursor = None
        while True:
            params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
            body = (await client.get("/items", params=params)).json()
            ids += body["ids"]
            cursor = body["next"]
            if cursor is None:
                break
        assert ids == [str(i.id) for i in items]

    @pytest.mark.parametrize(
        "cursor",
        [
            "a",
            "garbage!",
            b64(b"[1]"),
            b64(b'["not-a-date", "x"]'),
            b64(b'{"k": 1}'),
            b64(b"[18446744073709551615, 1e400]"),
            b64(b"[18446744073709551615, 1]"),
            b64(b"[[], {}]"),
        ],
    )
    async def test_tampered_cursor_is_400(self, client: Any, cursor: str) -> None:
        response = await client.get("/items", params={"cursor": cursor})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["type"] == "urn:crm:problem:invalid-cursor"
        assert body["title"] == "Invalid pagination cursor"
        assert body["instance"] == "/items"
