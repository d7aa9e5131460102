"""The intake's look-up of customers by external id reads the unique index alone."""

from __future__ import annotations

import uuid

import orjson
from sqlalchemy import text

from crm_profile.customers.repository import CustomerRepository
from crm_profile.database import driver_connection, lines


async def test_the_unique_index_holds_the_id_and_status(session) -> None:
    definition = await session.scalar(
        text(
            "SELECT indexdef FROM pg_indexes "
            "WHERE schemaname = 'profile' AND indexname = 'uq_customer_external_id'"
        )
    )
    assert definition.endswith("USING btree (external_id) INCLUDE (id, status)")


async def test_the_live_id_look_up_is_an_index_only_scan(session) -> None:
    token = uuid.uuid4().hex[:8]
    await session.execute(
        text(
            "INSERT INTO profile.customer (id, external_id, status) "
            "SELECT gen_random_uuid(), :prefix || g, CASE WHEN g % 10 = 0 THEN 'erased' "
            "ELSE 'active' END FROM generate_series(1, 2000) AS g"
        ),
        {"prefix": f"c-idx-{token}-"},
    )
    wanted = [f"c-idx-{token}-{i}" for i in range(1, 31)]
    found = await CustomerRepository(session).live_ids_by_external_id(wanted)
    assert sorted(found) == sorted(x for x in wanted if not x.endswith("0"))
    driver = await driver_connection(session)
    await driver.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
    plan = await driver.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT array_agg(external_id), array_agg(id) "
        "FROM profile.customer "
        "WHERE external_id = ANY(string_to_array($1, E'\\n')) AND status <> 'erased'",
        lines(wanted),
    )
    [top] = plan if isinstance(plan, list) else orjson.loads(plan)
    [scan] = top["Plan"]["Plans"]
    assert (scan["Node Type"], scan["Index Name"]) == ("Index Only Scan", "uq_customer_external_id")
