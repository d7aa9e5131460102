"""SQL for consent decisions: the history, the current decision per customer, group reads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.errors import InvalidCursor
from crm_common.repository import RepositoryBase, decode_cursor, encode_cursor
from crm_profile.models import Consent, ConsentHistory, Customer

#: On an exact tie of ``decided_at`` the denial wins: refusing is the safe reading.
_LATEST_FIRST = (Consent.decided_at.desc(), case((Consent.status == "denied", 0), else_=1))


class ConsentRepository(RepositoryBase[Consent]):
    """Consent rows of one or several customers (a merge group)."""

    model = Consent

    async def add_history(self, customer_id: uuid.UUID, values: dict[str, Any]) -> None:
        """Record a decision in the history (every decision, whether it wins or not)."""
        await self.session.execute(insert(ConsentHistory).values(customer_id=customer_id, **values))

    async def set_current(self, customer_id: uuid.UUID, values: dict[str, Any]) -> bool:
        """Make the decision the customer's current one unless a later one is stored; ``True`` if it is."""
        insert_ = pg_insert(Consent).values(customer_id=customer_id, **values)
        stored, new = Consent.__table__.c, insert_.excluded
        stmt = insert_.on_conflict_do_update(
            index_elements=[Consent.customer_id, Consent.channel, Consent.purpose],
            set_={"status": new.status, "source": new.source, "decided_at": new.decided_at},
            where=or_(
                new.decided_at > stored.decided_at,
                and_(new.decided_at == stored.decided_at, new.status == "denied"),
            ),
        ).returning(Consent.customer_id)
        return (await self.session.execute(stmt)).first() is not None

    async def effective(
        self, group: Sequence[uuid.UUID], *, channel: str | None = None, purpose: str | None = None
    ) -> list[Row[tuple[str, str, str, str, datetime]]]:
        """The latest decision per channel and purpose across ``group`` (columns, not entities)."""
        stmt = (
            select(
                Consent.channel, Consent.purpose, Consent.status, Consent.source, Consent.decided_at
            )
            .where(Consent.customer_id.in_(group))
            .distinct(Consent.channel, Consent.purpose)
            .order_by(Consent.channel, Consent.purpose, *_LATEST_FIRST)
        )
        if channel is not None:
            stmt = stmt.where(Consent.channel == channel)
        if purpose is not None:
            stmt = stmt.where(Consent.purpose == purpose)
        return list((await self.session.execute(stmt)).all())

    async def history(
        self,
        group: Sequence[uuid.UUID],
        *,
        channel: str | None,
        purpose: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Decisions of ``group``, latest ``decided_at`` first (keyset on decided_at, id)."""
        h = ConsentHistory
        stmt = (
            select(
                h.id,
                Customer.external_id.label("customer_external_id"),
                h.channel,
                h.purpose,
                h.status,
                h.source,
                h.decided_at,
                h.recorded_at,
            )
            .join(Customer, Customer.id == h.customer_id)
            .where(h.customer_id.in_(group))
            .order_by(h.decided_at.desc(), h.id.desc())
            .limit(limit + 1)
        )
        if channel is not None:
            stmt = stmt.where(h.channel == channel)
        if purpose is not None:
            stmt = stmt.where(h.purpose == purpose)
        if cursor is not None:
            decided_at, last_id = _history_cursor(cursor)
            stmt = stmt.where(
                or_(h.decided_at < decided_at, and_(h.decided_at == decided_at, h.id < last_id))
            )
        rows = [dict(r) for r in (await self.session.execute(stmt)).mappings()]
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor([rows[-1]["decided_at"], rows[-1]["id"]])


def _history_cursor(cursor: str) -> tuple[datetime, int]:
    """``(decided_at, id)`` of a history cursor; ``InvalidCursor`` when it is not one."""
    decided_at, last_id = decode_cursor(cursor, 2)
    if not isinstance(decided_at, str) or type(last_id) is not int:
        raise InvalidCursor()
    try:
        when = datetime.fromisoformat(decided_at)
    except ValueError as exc:
        raise InvalidCursor() from exc
    if when.tzinfo is None or not 0 < last_id < 2**63:
        raise InvalidCursor()
    return when, last_id
