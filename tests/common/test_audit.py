"""Audit log: entries name the actor and are written in the caller's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_common.audit import AuditLog, actor_name
from crm_common.auth import ApiKeyPrincipal, CustomerPrincipal
from tests.common.plumbing import audit_table

audit = AuditLog(audit_table)
KEY = ApiKeyPrincipal("ops-console", frozenset({"plumbing:admin"}))
CUSTOMER = CustomerPrincipal("shopper-7", {"sub": "shopper-7"})


@pytest.mark.parametrize(
    ("principal", "name"),
    [(KEY, "key:ops-console"), (CUSTOMER, "customer:shopper-7"), (None, "system")],
)
def test_actor_name(principal, name: str) -> None:
    assert actor_name(principal) == name


async def entries(db, target_id: str) -> list[dict]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_table)
            .where(audit_table.c.target_id == target_id)
            .order_by(audit_table.c.id)
        )
        return [dict(r) for r in rows.mappings()]


async def test_record_commits_with_the_change(plumbing_db, token) -> None:
    async with plumbing_db.unit_of_work() as session:
        await audit.record(
            session,
            actor=KEY,
            action="customer.erase",
            target_type="customer",
            target_id=token,
            details={"reason": "gdpr"},
        )
        await audit.record(
            session, actor=None, action="customer.merge", target_type="customer", target_id=token
        )
    rows = await entries(plumbing_db, token)
    assert [(r["actor"], r["action"], r["target_type"], r["details"]) for r in rows] == [
        ("key:ops-console", "customer.erase", "customer", {"reason": "gdpr"}),
        ("system", "customer.merge", "customer", {}),
    ]
    assert all(r["created_at"] is not None for r in rows)


async def test_record_is_rolled_back_with_the_change(plumbing_db, token) -> None:
    async with plumbing_db.sessionmaker() as session:
        await audit.record(
            session,
            actor=CUSTOMER,
            action="profile.update",
            target_type="customer",
            target_id=token,
        )
        await session.rollback()
    assert await entries(plumbing_db, token) == []
