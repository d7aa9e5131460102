"""SQL of the identity domain: anonymous ids, duplicate candidates, merges, group consents."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import InstrumentedAttribute, aliased

from crm_common.errors import InvalidCursor
from crm_common.repository import Page, RepositoryBase, decode_cursor, encode_cursor
from crm_profile.models import BehaviourEvent, Consent, Customer, CustomerIdentity, Merge

ANONYMOUS_ID = "anonymous_id"


@dataclass(frozen=True)
class DuplicateRow:
    """Two active customers sharing an email or phone; ``older`` was created first."""

    older_id: uuid.UUID
    older_external_id: str
    newer_id: uuid.UUID
    newer_external_id: str
    reasons: list[str]
    cursor: str


@dataclass(frozen=True)
class Decision:
    """The decision that wins a channel and purpose in a merge group's effective view."""

    status: str
    source: str
    decided_at: datetime


class IdentityRepository(RepositoryBase[CustomerIdentity]):
    """Anonymous ids linked to customers, and the anonymous events they bring along."""

    model = CustomerIdentity

    async def by_anonymous_id(self, anonymous_id: str) -> CustomerIdentity | None:
        """The link of ``anonymous_id``, if it has one."""
        return await self.get_one_or_none(
            select(CustomerIdentity).where(
                CustomerIdentity.kind == ANONYMOUS_ID, CustomerIdentity.value == anonymous_id
            )
        )

    async def link(self, customer_id: uuid.UUID, anonymous_id: str) -> bool:
        """Link ``anonymous_id`` to the customer; ``False`` when it was linked already (to anyone)."""
        stmt = (
            pg_insert(CustomerIdentity)
            .values(customer_id=customer_id, kind=ANONYMOUS_ID, value=anonymous_id)
            .on_conflict_do_nothing(index_elements=[CustomerIdentity.kind, CustomerIdentity.value])
            .returning(CustomerIdentity.id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def attach_anonymous_events(self, anonymous_id: str, customer_id: uuid.UUID) -> int:
        """Give every event that arrived with ``anonymous_id`` and no customer to the customer."""
        stmt = (
            update(BehaviourEvent)
            .where(
                BehaviourEvent.anonymous_id == anonymous_id, BehaviourEvent.customer_id.is_(None)
            )
            .values(customer_id=customer_id)
            .execution_options(synchronize_session=False)
        )
        result = cast(CursorResult[Any], await self.session.execute(stmt))
        return result.rowcount


def _parse_duplicate_cursor(cursor: str) -> tuple[datetime, uuid.UUID, datetime, uuid.UUID]:
    """The sort key a duplicates cursor encodes; 400 when it is not one of ours."""
    values = decode_cursor(cursor, 4)
    try:
        return (
            datetime.fromisoformat(values[0]),
            uuid.UUID(values[1]),
            datetime.fromisoformat(values[2]),
            uuid.UUID(values[3]),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidCursor() from exc


def _undone_between(a: Any, b: Any) -> ColumnElement[bool]:
    """An undone merge joined ``a`` and ``b`` (in either direction): a human said they differ."""
    return (
        select(Merge.id)
        .where(
            Merge.undone_at.is_not(None),
            or_(
                and_(Merge.survivor_id == a, Merge.duplicate_id == b),
                and_(Merge.survivor_id == b, Merge.duplicate_id == a),
            ),
        )
        .exists()
    )


class DuplicateRepository(RepositoryBase[Customer]):
    """Active customers that share a normalised email or phone, and row locks for merging."""

    model = Customer

    async def pairs(
        self, *, cursor: str | None, limit: int
    ) -> tuple[list[DuplicateRow], str | None]:
        """Candidate pairs (older, newer) in the order of the older then the newer customer."""
        after = _parse_duplicate_cursor(cursor) if cursor is not None else None
        older, newer = aliased(Customer, name="older"), aliased(Customer, name="newer")
        key = (older.created_at, older.id, newer.created_at, newer.id)

        def branch(field: str) -> Select[Any]:
            """Pairs matching on one field; the self-join uses that field's index."""
            stmt = (
                select(older.id.label("older_id"), newer.id.label("newer_id"))
                .add_columns(literal(field).label("reason"))
                .join_from(older, newer, getattr(older, field) == getattr(newer, field))
                .where(
                    older.status == "active",
                    newer.status == "active",
                    tuple_(older.created_at, older.id) < tuple_(newer.created_at, newer.id),
                )
            )
            if after is not None:
                typed = [literal(v, type_=c.type) for c, v in zip(key, after, strict=True)]
                stmt = stmt.where(tuple_(*key) > tuple_(*typed))
            return stmt

        matches = union_all(branch("email"), branch("phone")).subquery("matches")
        grouped = (
            select(
                matches.c.older_id,
                matches.c.newer_id,
                func.array_agg(matches.c.reason).label("reasons"),
            )
            .group_by(matches.c.older_id, matches.c.newer_id)
            .subquery("pairs")
        )
        stmt = (
            select(
                older.id,
                older.external_id,
                older.created_at,
                newer.id,
                newer.external_id,
                newer.created_at,
                grouped.c.reasons,
            )
            .join_from(grouped, older, older.id == grouped.c.older_id)
            .join(newer, newer.id == grouped.c.newer_id)
            .order_by(*key)
            .limit(limit + 1)
        )
        rows = (await self.session.execute(stmt)).all()
        items = [
            DuplicateRow(
                older_id=r[0],
                older_external_id=r[1],
                newer_id=r[3],
                newer_external_id=r[4],
                reasons=sorted(r[6]),
                cursor=encode_cursor([r[2], r[0], r[5], r[3]]),
            )
            for r in rows[:limit]
        ]
        next_cursor = items[-1].cursor if len(rows) > limit else None
        return items, next_cursor

    async def matching_active(self, customer: Customer, field: str) -> list[Customer]:
        """Other active customers with ``customer``'s value of ``field``, oldest first.

        Pairs whose merge was undone are left out: undoing said they are different people.
        """
        column: InstrumentedAttribute[Any] = getattr(Customer, field)
        value = getattr(customer, field)
        if value is None:
            return []
        stmt = (
            select(Customer)
            .where(
                column == value,
                Customer.status == "active",
                Customer.id != customer.id,
                ~_undone_between(Customer.id, customer.id),
            )
            .order_by(Customer.created_at, Customer.id)
        )
        return await self.get_all(stmt)

    async def lock(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Customer]:
        """Lock these customers (in id order, so concurrent merges cannot deadlock), fresh."""
        stmt = (
            select(Customer)
            .where(Customer.id.in_(ids))
            .order_by(Customer.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {c.id: c for c in await self.get_all(stmt)}


class GroupConsentRepository(RepositoryBase[Consent]):
    """The effective consents of a merge group: the most recent decision of any member wins."""

    model = Consent

    async def effective(self, customer_ids: Sequence[uuid.UUID]) -> dict[tuple[str, str], Decision]:
        """``(channel, purpose)`` → winning decision; on a tie, a denial wins over a grant."""
        stmt = (
            select(Consent)
            .where(Consent.customer_id.in_(customer_ids))
            .distinct(Consent.channel, Consent.purpose)
            .order_by(
                Consent.channel,
                Consent.purpose,
                Consent.decided_at.desc(),
                (Consent.status == "denied").desc(),
                Consent.customer_id,
            )
        )
        return {
            (c.channel, c.purpose): Decision(c.status, c.source, c.decided_at)
            for c in await self.get_all(stmt)
        }


class MergeRepository(RepositoryBase[Merge]):
    """Merge records."""

    model = Merge

    async def by_id(self, merge_id: uuid.UUID, *, for_update: bool = False) -> Merge | None:
        """The merge with this id."""
        stmt = select(Merge).where(Merge.id == merge_id)
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return await self.get_one_or_none(stmt)

    async def of_group(
        self, customer_ids: Sequence[uuid.UUID], *, cursor: str | None, limit: int
    ) -> Page[Merge]:
        """Every merge (open or undone) a member of the group took part in, oldest first."""
        stmt = select(Merge).where(
            or_(Merge.survivor_id.in_(customer_ids), Merge.duplicate_id.in_(customer_ids))
        )
        return await self.paginate(
            stmt, order_by=[Merge.merged_at, Merge.id], cursor=cursor, limit=limit
        )

    async def external_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Customer id → external id."""
        rows = await self.session.execute(
            select(Customer.id, Customer.external_id).where(Customer.id.in_(set(ids)))
        )
        return {r[0]: r[1] for r in rows}
