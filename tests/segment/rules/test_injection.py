"""Strings that look like SQL, Python, OGNL/SpEL or template code are plain values."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.segment.rules.factories import NOW, customer, matching, order, segment, tag

PAYLOADS = [
    "'; DROP TABLE segment.customer; --",
    "x' OR '1'='1",
    "__import__('os').system('x')",
    "${T(java.lang.Runtime).getRuntime().exec('x')}",
    "#{1+1}",
    "{{7*7}}",
    "%' OR 1=1 --",
    "\\'; SELECT pg_sleep(10); --",
]


async def tables_exist(session: AsyncSession) -> bool:
    found = await session.scalar(
        text(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'segment' "
            "AND tablename IN ('customer', 'segment', 'order')"
        )
    )
    return bool(found == 3)


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_payload_matches_only_itself(session, payload):
    await customer(session, "c-hit", city=payload, attributes={"note": payload})
    await customer(session, "c-miss", city="Berlin", attributes={"note": "plain"})
    await tag(session, "c-hit", payload)
    await order(session, "o-1", "c-hit", NOW, lines=[(payload, payload)])
    assert await matching(session, {"field": "city", "op": "eq", "value": payload}) == ["c-hit"]
    assert await matching(session, {"field": "city", "op": "in", "value": [payload]}) == ["c-hit"]
    assert await matching(session, {"field": "city", "op": "contains", "value": payload}) == [
        "c-hit"
    ]
    assert await matching(session, {"field": "attributes.note", "op": "eq", "value": payload}) == [
        "c-hit"
    ]
    assert await matching(session, {"field": "tags", "op": "contains", "value": payload}) == [
        "c-hit"
    ]
    rule = {"orders": {"within_days": 30, "sku": payload, "category": payload}}
    assert await matching(session, rule) == ["c-hit"]
    rule = {"events": {"type": "search", "within_days": 3, "where": {"sku": payload}}}
    assert await matching(session, rule) == []
    assert await tables_exist(session)


async def test_saved_segment_with_payload_is_inert(session):
    await segment(session, "evil", {"field": "city", "op": "eq", "value": PAYLOADS[0]})
    assert await tables_exist(session)
