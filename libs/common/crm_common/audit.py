"""Audit log: who changed what, and when, for every change made with an admin scope.

Each service keeps its own ``audit_log`` table (created by the factory, migrated by the
service). Entries name the actor (API key name or ``customer:<external_id>``), the action and
the target's ids; they never hold personal data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, MetaData, Table, Text, func, insert
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import ApiKeyPrincipal, CustomerPrincipal

__all__ = ["AuditLog", "actor_name", "make_audit_table"]


def make_audit_table(metadata: MetaData) -> Table:
    """The ``audit_log`` table in ``metadata``'s schema."""
    return Table(
        "audit_log",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("actor", Text, nullable=False),
        Column("action", Text, nullable=False),
        Column("target_type", Text, nullable=False),
        Column("target_id", Text, nullable=False),
        Column("details", JSONB, nullable=False, server_default="{}"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def actor_name(principal: ApiKeyPrincipal | CustomerPrincipal | None) -> str:
    """How an actor is named in the audit log."""
    if isinstance(principal, ApiKeyPrincipal):
        return f"key:{principal.name}"
    if isinstance(principal, CustomerPrincipal):
        return f"customer:{principal.external_id}"
    return "system"


class AuditLog:
    """Writes audit entries in the caller's transaction."""

    def __init__(self, table: Table) -> None:
        """Wrap the service's ``audit_log`` table."""
        self.table = table

    async def record(
        self,
        session: AsyncSession,
        *,
        actor: ApiKeyPrincipal | CustomerPrincipal | None,
        action: str,
        target_type: str,
        target_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Add one entry; committed (or rolled back) with the change it describes."""
        await session.execute(
            insert(self.table).values(
                actor=actor_name(actor),
                action=action,
                target_type=target_type,
                target_id=target_id,
                details=details or {},
            )
        )
