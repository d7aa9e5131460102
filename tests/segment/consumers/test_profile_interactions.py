"""Profile's behaviour batches → ``interaction_daily`` (``segment-profile-interactions``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import event, func, select

from crm_profile.events import CUSTOMER_CREATED, CUSTOMER_MERGED, INTERACTION_RECORDED
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.consumers.profile_customers import on_profile_customer
from crm_segment.consumers.profile_interactions import SUBSCRIPTION, on_interactions_recorded
from crm_segment.models import InteractionDaily
from tests.segment.conftest import at, envelope
from tests.segment.consumers.samples import batch, fresh, interaction, queued
from tests.segment.consumers.test_profile_customers import customer, merged

handle = on_interactions_recorded
D = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


async def aggregates(
    session, *customers: str
) -> dict[tuple[str, date, str, str, str], tuple[Any, ...]]:
    """``(customer, day, type, category, sku) -> (root, count, value, last_at)``."""
    rows = await fresh(
        session, InteractionDaily, InteractionDaily.customer_external_id.in_(customers)
    )
    return {
        (r.customer_external_id, r.day, r.type, r.category, r.sku): (
            r.root_external_id,
            r.count,
            r.value_minor,
            r.last_at,
        )
        for r in rows
    }


@contextmanager
def counting(connection) -> Iterator[list[str]]:
    """Collect the SQL statements run on ``connection`` (a sync connection) meanwhile."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


class TestSubscription:
    def test_durable(self):
        assert (SUBSCRIPTION.subject, SUBSCRIPTION.durable) == (
            "crm.profile.interaction.recorded",
            "segment-profile-interactions",
        )
        assert SUBSCRIPTION in SUBSCRIPTIONS


class TestRecorded:
    async def test_folds_a_batch_into_daily_aggregates(self, session):
        cest = timezone(timedelta(hours=2))
        payload = batch(
            interaction("pi-1", "product_view", D, "SKU-1", "shoes"),
            interaction("pi-1", "product_view", D + timedelta(hours=3), "SKU-1", "shoes"),
            interaction("pi-1", "add_to_cart", D, "SKU-1", "shoes", value_minor=1500),
            interaction("pi-1", "add_to_cart", D + timedelta(hours=1), "SKU-1", "shoes", 2500),
            interaction("pi-1", "app_open", D),
            # 01:30 at UTC+2 on the 11th is 23:30 UTC on the 10th: days are UTC days
            interaction("pi-1", "app_open", datetime(2026, 11, 11, 1, 30, tzinfo=cest)),
            interaction("pi-2", "search", D + timedelta(days=1)),
            interaction(None, "page_view", D),  # anonymous: skipped
        )
        await handle(session, envelope(INTERACTION_RECORDED, payload, at(0)))
        day, next_day = D.date(), D.date() + timedelta(days=1)
        assert await aggregates(session, "pi-1", "pi-2") == {
            ("pi-1", day, "product_view", "shoes", "SKU-1"): ("pi-1", 2, 0, D + timedelta(hours=3)),
            ("pi-1", day, "add_to_cart", "shoes", "SKU-1"): (
                "pi-1",
                2,
                4000,
                D + timedelta(hours=1),
            ),
            ("pi-1", day, "app_open", "", ""): (
                "pi-1",
                2,
                0,
                datetime(2026, 11, 10, 23, 30, tzinfo=UTC),
            ),
            ("pi-2", next_day, "search", "", ""): ("pi-2", 1, 0, D + timedelta(days=1)),
        }
        anonymous = select(func.count()).where(InteractionDaily.customer_external_id.is_(None))
        assert (await session.execute(anonymous)).scalar_one() == 0
        assert await queued(session) == {"pi-1": "input", "pi-2": "input"}

    async def test_reads_interactions_published_without_their_null_fields(self, session):
        # Profile leaves out the fields that have no value (docs/events.md).
        payload = batch(
            interaction("pi-5", "add_to_cart", D, "SKU-5", value_minor=700),
            interaction("pi-5", "app_open", D),
            interaction(None, "page_view", D),
        )
        sent = replace(
            envelope(INTERACTION_RECORDED, payload, at(0)),
            data=payload.model_dump(mode="json", exclude_none=True),
        )
        assert "category" not in sent.data["interactions"][0]
        assert "customer_external_id" not in sent.data["interactions"][2]
        await handle(session, sent)
        assert await aggregates(session, "pi-5") == {
            ("pi-5", D.date(), "add_to_cart", "", "SKU-5"): ("pi-5", 1, 700, D),
            ("pi-5", D.date(), "app_open", "", ""): ("pi-5", 1, 0, D),
        }

    async def test_later_batches_add_up_and_keep_the_latest_time(self, session):
        key = ("pi-3", D.date(), "product_view", "", "SKU-3")
        late = batch(interaction("pi-3", "product_view", D + timedelta(hours=5), "SKU-3"))
        early = batch(
            interaction("pi-3", "product_view", D, "SKU-3"),
            interaction("pi-3", "product_view", D + timedelta(hours=1), "SKU-3"),
        )
        await handle(session, envelope(INTERACTION_RECORDED, late, at(0)))
        await handle(session, envelope(INTERACTION_RECORDED, early, at(1)))  # older, out of order
        assert (await aggregates(session, "pi-3"))[key] == ("pi-3", 3, 0, D + timedelta(hours=5))

    async def test_counts_for_the_survivor_of_a_merged_customer(self, session):
        s, d = ("pi-4s", uuid.uuid4()), ("pi-4d", uuid.uuid4())
        await on_profile_customer(session, envelope(CUSTOMER_CREATED, customer(*s), at(0)))
        await on_profile_customer(session, envelope(CUSTOMER_MERGED, merged(s, d), at(1)))
        await handle(
            session, envelope(INTERACTION_RECORDED, batch(interaction("pi-4d", "search", D)), at(2))
        )
        [(root, count, _, _)] = (await aggregates(session, "pi-4d")).values()
        assert (root, count) == ("pi-4s", 1)

    async def test_a_batch_without_known_customers_writes_nothing(self, session):
        await handle(
            session, envelope(INTERACTION_RECORDED, batch(interaction(None, "page_view", D)), at(0))
        )
        await handle(session, envelope(INTERACTION_RECORDED, batch(), at(0)))
        assert await queued(session) == {}

    async def test_a_thousand_interactions_take_two_statements(self, session):
        interactions = [
            interaction(
                f"pi-bulk-{n % 50}",
                ("product_view", "add_to_cart", "search")[n % 3],
                D + timedelta(minutes=n),
                f"SKU-{n % 7}",
                ("shoes", "bags", None)[n % 3],
                value_minor=n,
            )
            for n in range(1000)
        ]
        connection = await session.connection()
        with counting(connection.sync_connection) as statements:
            await handle(session, envelope(INTERACTION_RECORDED, batch(*interactions), at(0)))
        assert len(statements) == 2  # the aggregate upsert and the queue upsert
        totals = select(
            func.sum(InteractionDaily.count), func.sum(InteractionDaily.value_minor)
        ).where(InteractionDaily.customer_external_id.like("pi-bulk-%"))
        assert tuple((await session.execute(totals)).one()) == (1000, sum(range(1000)))
        assert len(await queued(session)) == 50
