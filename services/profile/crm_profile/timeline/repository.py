"""The timeline query: one ``UNION ALL`` over every kind, keyset-paginated on (at, kind, id).

Each branch is already filtered to the merge group, cut at the cursor and limited, so the
database reads at most ``limit + 1`` rows per kind through the per-customer time indexes; the
outer query merges the branches in order. Kinds and ids compare in the "C" collation so the
cursor (compared in Python for the kind) and ``ORDER BY`` agree on every server.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    cast,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_profile.models import (
    BehaviourEvent,
    ConsentHistory,
    Customer,
    CustomerTagChange,
    Merge,
    Order,
    OrderStatusChange,
    Refund,
)
from crm_profile.timeline.schemas import Kind


@dataclass(frozen=True)
class Position:
    """The sort key of the last item of a page: the next page starts strictly after it."""

    at: datetime
    kind: str
    id: str


def _data(**fields: Any) -> ColumnElement[Any]:
    """``jsonb_build_object`` of the kind's summary fields (keys are constants of this module)."""
    args: list[Any] = []
    for key, column in fields.items():
        args += [literal_column(f"'{key}'", Text), column]
    return func.jsonb_build_object(*args, type_=JSONB)


def _branch(
    kind: Kind,
    at: Any,
    item_id: Any,
    customer_id: Any,
    data: ColumnElement[Any],
    *,
    after: Position | None,
    limit: int,
) -> Select[Any]:
    """One kind's rows as (at, kind, id, customer_id, data), after the cursor, newest first."""
    id_text = cast(item_id, Text).collate("C")
    stmt = select(
        at.label("at"),
        literal_column(f"'{kind}'", Text).label("kind"),
        cast(item_id, Text).label("id"),
        customer_id.label("customer_id"),
        data.label("data"),
    )
    if after is not None:
        if kind < after.kind:  # same ``at`` still comes after the cursor
            stmt = stmt.where(at <= after.at)
        elif kind == after.kind:
            stmt = stmt.where(or_(at < after.at, and_(at == after.at, id_text < after.id)))
        else:
            stmt = stmt.where(at < after.at)
    return stmt.order_by(at.desc(), id_text.desc()).limit(limit)


Branch = Callable[[Sequence[uuid.UUID], Position | None, int], Select[Any]]


def _events(group: Sequence[uuid.UUID], after: Position | None, limit: int) -> Select[Any]:
    e = BehaviourEvent
    data = _data(type=e.type, sku=e.sku, category=e.category, value_minor=e.value_minor)
    stmt = _branch(
        "event", e.occurred_at, e.event_id, e.customer_id, data, after=after, limit=limit
    )
    return stmt.where(e.customer_id.in_(group))


def _orders(group: Sequence[uuid.UUID], after: Position | None, limit: int) -> Select[Any]:
    o = Order
    data = _data(
        order_external_id=o.external_id,
        status=o.status,
        currency=o.currency,
        total_minor=o.total_minor,
        channel=o.channel,
    )
    stmt = _branch("order", o.placed_at, o.id, o.customer_id, data, after=after, limit=limit)
    return stmt.where(o.customer_id.in_(group))


def _order_statuses(group: Sequence[uuid.UUID], after: Position | None, limit: int) -> Select[Any]:
    s, o = OrderStatusChange, Order
    data = _data(order_external_id=o.external_id, status=s.status)
    stmt = _branch(
        "order_status", s.changed_at, s.id, o.customer_id, data, after=after, limit=limit
    )
    # "placed" is the order item itself.
    return stmt.join(o, o.id == s.order_id).where(o.customer_id.in_(group), s.status != "placed")


def _refunds(group: Sequence[uuid.UUID], after: Position | None, limit: int) -> Select[Any]:
    r, o = Refund, Order
    data = _data(order_external_id=o.external_id, currency=o.currency, amount_minor=r.amount_minor)
    stmt = _branch("refund", r.created_at, r.id, o.customer_id, data, after=after, limit=limit)
    return stmt.join(o, o.id == r.order_id).where(o.customer_id.in_(group))


def _consents(group: Sequence[uuid.UUID], after: Position | None, limit: int) -> Select[Any]:
    h = ConsentHistory
    data = _data(channel=h.channel, purpose=h.purpose, status=h.status, source=h.source)
    stmt = _branch("consent", h.decided_at, h.id, h.customer_id, data, after=after, limit=limit)
    return stmt.where(h.customer_id.in_(group))


def _tags(group: Sequence[uuid.UUID], after: Position | None, limit: int) -> Select[Any]:
    t = CustomerTagChange
    data = _data(tag=t.tag, origin=t.origin, change=t.change)
    stmt = _branch("tag", t.changed_at, t.id, t.customer_id, data, after=after, limit=limit)
    return stmt.where(t.customer_id.in_(group))


def _merges(kind: Kind) -> Branch:
    """Merges (at ``merged_at``) or their undoing (at ``undone_at``) touching the group."""

    def branch(group: Sequence[uuid.UUID], after: Position | None, limit: int) -> Select[Any]:
        m = Merge
        survivor, duplicate = aliased(Customer), aliased(Customer)
        data = _data(
            survivor_external_id=survivor.external_id,
            duplicate_external_id=duplicate.external_id,
            rule=m.rule,
        )
        at = m.merged_at if kind == "merge" else m.undone_at
        stmt = _branch(kind, at, m.id, m.survivor_id, data, after=after, limit=limit)
        if kind == "unmerge":
            stmt = stmt.where(m.undone_at.is_not(None))
        return (
            stmt.join(survivor, survivor.id == m.survivor_id)
            .join(duplicate, duplicate.id == m.duplicate_id)
            .where(or_(m.survivor_id.in_(group), m.duplicate_id.in_(group)))
        )

    return branch


#: Every kind that has rows today. ``message`` fills in once notify publishes message events.
BRANCHES: dict[Kind, Branch] = {
    "event": _events,
    "order": _orders,
    "order_status": _order_statuses,
    "refund": _refunds,
    "consent": _consents,
    "tag": _tags,
    "merge": _merges("merge"),
    "unmerge": _merges("unmerge"),
}


class TimelineRepository:
    """Reads the timeline of a merge group."""

    def __init__(self, session: AsyncSession) -> None:
        """Keep the caller's session."""
        self.session = session

    async def page(
        self,
        group: Sequence[uuid.UUID],
        kinds: Sequence[Kind],
        *,
        after: Position | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` items of ``kinds``, newest first, strictly after ``after``."""
        branches = [BRANCHES[k](group, after, limit) for k in kinds if k in BRANCHES]
        if not branches:
            return []
        merged = union_all(*branches).subquery("timeline")
        stmt = (
            select(
                merged.c.at,
                merged.c.kind,
                merged.c.id,
                merged.c.data,
                Customer.external_id.label("customer_external_id"),
            )
            .select_from(merged.join(Customer, Customer.id == merged.c.customer_id))
            .order_by(
                merged.c.at.desc(),
                merged.c.kind.collate("C").desc(),
                merged.c.id.collate("C").desc(),
            )
            .limit(limit)
        )
        return [dict(r) for r in (await self.session.execute(stmt)).mappings()]
