"""The hand-computed RFM fixture (see test_batch.py for the expected values)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.segment.rfm.factories import add_customer, add_order

AS_OF = date(2026, 11, 30)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def day(y: int, m: int, d: int, h: int = 10) -> datetime:
    """A UTC instant."""
    return datetime(y, m, d, h, tzinfo=UTC)


@pytest.fixture
async def shop(session: AsyncSession) -> None:
    """Nine customers with an order in the window (2025-12-01 .. 2026-11-30), a prospect, a
    merged duplicate and orders that must not count."""
    for cid in "abcdefgh":
        await add_customer(session, cid)
    await add_customer(session, "p")  # prospect: no order at all
    await add_customer(session, "x", merged_into="a")
    # a: 3 orders (one placed by its merged duplicate x)
    await add_order(session, "a", day(2026, 11, 30), 100)
    await add_order(session, "a", day(2026, 11, 20), 200)
    await add_order(session, "x", day(2026, 11, 10), 10, root="a")
    await add_order(session, "b", day(2026, 11, 30, 23), 50)
    for when, total in ((day(2026, 11, 25), 1000), (day(2026, 10, 1), 500), (day(2026, 9, 1), 500)):
        await add_order(session, "c", when, total)
    await add_order(session, "d", day(2026, 10, 1), 300)
    await add_order(session, "d", day(2026, 8, 1), 200)
    await add_order(session, "e", day(2026, 6, 1), 300)
    await add_order(session, "e", day(2025, 11, 30, 23), 999)  # the day before the window
    await add_order(session, "f", datetime(2025, 12, 1, tzinfo=UTC), 70)  # window's first instant
    await add_order(session, "f", day(2026, 11, 29), 5000, status="cancelled")
    await add_order(session, "f", day(2026, 11, 28), 6000, refunded_minor=6000, fully_refunded=True)
    # g: 01:00 on the 30th in UTC+2 is the 29th in UTC; partly refunded
    plus2 = timezone(timedelta(hours=2))
    await add_order(session, "g", datetime(2026, 11, 30, 1, tzinfo=plus2), 400, refunded_minor=100)
    await add_order(session, "h", day(2026, 11, 1), 100)
    await add_order(session, "h", datetime(2026, 12, 1, tzinfo=UTC), 700)  # after as_of
    await add_order(session, "z", day(2026, 7, 1), 80)  # no customer row yet
