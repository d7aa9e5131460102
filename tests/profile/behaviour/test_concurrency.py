"""Concurrent batches on committed data: the same events and new customers sent twice at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from crm_common.testing import asgi_client
from crm_profile.database import driver_connection, lines
from crm_profile.models import BehaviourEvent, Customer
from tests.conftest import ADMIN_HEADERS
from tests.profile.behaviour.conftest import event


class TestConcurrentBatches:
    async def test_the_same_batch_twice_at_once_is_stored_once(self, app, database):
        token = uuid.uuid4().hex[:8]
        items = [
            event("product_view", {"sku": f"S-{i}"}, customer=f"c-race-{token}-{i % 7}")
            for i in range(200)
        ]
        async with asgi_client(app, headers=ADMIN_HEADERS) as client:
            responses = await asyncio.gather(
                *(client.post("/v1/events", json={"events": items}) for _ in range(3))
            )
        bodies = [r.json() for r in responses]
        assert all(r.status_code == 202 for r in responses)
        assert sum(b["accepted"] for b in bodies) == 200
        assert sum(b["duplicates"] for b in bodies) == 400
        async with database.sessionmaker() as session:
            stored = await session.scalar(
                select(func.count())
                .select_from(BehaviourEvent)
                .where(BehaviourEvent.event_id.in_([i["event_id"] for i in items]))
            )
            customers = await session.scalar(
                select(func.count())
                .select_from(Customer)
                .where(Customer.external_id.like(f"c-race-{token}-%"))
            )
        assert (stored, customers) == (200, 7)


class TestDriverConnection:
    async def test_begins_the_sessions_transaction_when_none_was(self, database):
        async with database.sessionmaker() as session:
            driver = await driver_connection(session)
            assert driver.is_in_transaction()
            await session.rollback()
            assert not driver.is_in_transaction()

    async def test_its_writes_commit_and_roll_back_with_the_session(self, database):
        kept, dropped = (f"c-driver-{uuid.uuid4().hex[:8]}" for _ in range(2))
        for external_id, commit in ((kept, True), (dropped, False)):
            async with database.sessionmaker() as session:
                driver = await driver_connection(session)
                await driver.execute(
                    "INSERT INTO profile.customer (id, external_id, status, attributes)"
                    " VALUES ($1, $2, 'active', '{}')",
                    uuid.uuid4(),
                    external_id,
                )
                await (session.commit() if commit else session.rollback())
        async with database.sessionmaker() as session:
            stored = await session.scalars(
                select(Customer.external_id).where(Customer.external_id.in_([kept, dropped]))
            )
            assert list(stored) == [kept]

    async def test_each_transaction_of_a_session_gets_its_own(self, database):
        kept, dropped = (f"c-driver-{uuid.uuid4().hex[:8]}" for _ in range(2))
        insert = (
            "INSERT INTO profile.customer (id, external_id, status, attributes)"
            " VALUES ($1, $2, 'active', '{}')"
        )
        async with database.sessionmaker() as session:
            first = await driver_connection(session)
            assert await driver_connection(session) is first
            await first.execute(insert, uuid.uuid4(), kept)
            await session.commit()
            assert not first.is_in_transaction()
            second = await driver_connection(session)
            assert second.is_in_transaction()
            await second.execute(insert, uuid.uuid4(), dropped)
            await session.rollback()
        async with database.sessionmaker() as session:
            stored = await session.scalars(
                select(Customer.external_id).where(Customer.external_id.in_([kept, dropped]))
            )
            assert list(stored) == [kept]


class TestLines:
    async def test_a_list_parameter_as_one_text(self, database):
        async with database.sessionmaker() as session:
            driver = await driver_connection(session)
            for values in (["a"], ["a", "b,c", "d e"], []):
                assert (
                    await driver.fetchval(
                        "SELECT coalesce(string_to_array($1, E'\\n'), '{}')", lines(values)
                    )
                    == values
                )

    def test_refuses_a_value_holding_a_newline(self):
        with pytest.raises(ValueError, match="newline"):
            lines(["a", "b\nc"])
