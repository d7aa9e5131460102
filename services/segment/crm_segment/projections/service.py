"""Rules of the event-fed projections: what each fact changes, and whom to re-evaluate.

Consumers parse their events with narrow models and call these functions; each applies one
fact idempotently (a redelivered or older event changes nothing) and, when a customer's inputs
changed, queues that customer's root for re-evaluation.

Every function writing rows keyed by a customer's external id takes the event's ``ce-time``
(``sent_at``) and first skips the facts about customers erased at or after that time
(:mod:`crm_segment.customers.tombstones`): a late event must not re-create an erased
customer's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.customers.tombstones import erased_since
from crm_segment.evaluation.queue import enqueue
from crm_segment.projections.errors import OrderNotProjectedYet
from crm_segment.projections.repository import ProjectionRepository


@dataclass(frozen=True)
class Interaction:
    """One behaviour event as the daily aggregates need it."""

    customer_external_id: str | None
    type: str
    occurred_at: datetime
    category: str | None
    sku: str | None
    value_minor: int | None


async def _enqueue(session: AsyncSession, roots: Iterable[str | None]) -> None:
    """Queue the roots that changed (``None`` = nothing changed)."""
    await enqueue(session, [r for r in roots if r is not None])


async def _erased(session: AsyncSession, external_id: str | None, sent_at: datetime) -> bool:
    """True when an event about ``external_id`` sent at ``sent_at`` is late for its erasure."""
    return bool(await erased_since(session, [external_id], sent_at))


async def place_order(
    session: AsyncSession,
    order: dict[str, Any],
    lines: Sequence[dict[str, Any]],
    *,
    sent_at: datetime,
) -> None:
    """Project a placed order with its lines (numbered from 1); a known order is left alone."""
    if await _erased(session, order["customer_external_id"], sent_at):
        return
    numbered = [
        {**line, "order_external_id": order["order_external_id"], "line_no": n}
        for n, line in enumerate(lines, start=1)
    ]
    await _enqueue(session, [await ProjectionRepository(session).insert_order(order, numbered)])


async def change_order_status(
    session: AsyncSession,
    order_external_id: str,
    status: str,
    at: datetime,
    *,
    customer_external_id: str | None = None,
) -> None:
    """Apply a status as of ``at`` (``ce-time``) unless a newer one was applied.

    The order of an erased customer is gone: its late status change is skipped rather than
    retried as an order not projected yet.
    """
    if await _erased(session, customer_external_id, at):
        return
    repo = ProjectionRepository(session)
    root = await repo.set_order_status(order_external_id, status, at)
    if root is None and not await repo.order_exists(order_external_id):
        raise OrderNotProjectedYet(order_external_id)
    await _enqueue(session, [root])


async def refund_order(
    session: AsyncSession,
    order_external_id: str,
    refunded_total_minor: int,
    fully_refunded: bool,
    *,
    sent_at: datetime,
    customer_external_id: str | None = None,
) -> None:
    """Record the order's cumulative refunds (skipped, not retried, for an erased customer)."""
    if await _erased(session, customer_external_id, sent_at):
        return
    root = await ProjectionRepository(session).refund_order(
        order_external_id, refunded_total_minor, fully_refunded
    )
    if root is None:
        raise OrderNotProjectedYet(order_external_id)
    await _enqueue(session, [root])


def _aggregate_row(i: Interaction) -> tuple[str, date, str, str, str, int, datetime]:
    """The aggregate key and measures of one interaction (UTC day, '' for no category/SKU)."""
    assert i.customer_external_id is not None
    occurred = i.occurred_at.astimezone(UTC)
    return (
        i.customer_external_id,
        occurred.date(),
        i.type,
        i.category or "",
        i.sku or "",
        i.value_minor or 0,
        occurred,
    )


async def record_interactions(
    session: AsyncSession, interactions: Sequence[Interaction], *, sent_at: datetime
) -> None:
    """Fold a batch of behaviour events into the daily aggregates (anonymous ones, and those of
    customers erased since the batch was sent, are skipped)."""
    rows = [_aggregate_row(i) for i in interactions if i.customer_external_id is not None]
    await _enqueue(session, await ProjectionRepository(session).add_interactions(rows, sent_at))


async def change_consent(
    session: AsyncSession,
    external_id: str,
    channel: str,
    purpose: str,
    status: str,
    decided_at: datetime,
    *,
    sent_at: datetime,
) -> None:
    """Keep the latest consent decision for the channel and purpose."""
    if await _erased(session, external_id, sent_at):
        return
    root = await ProjectionRepository(session).upsert_consent(
        external_id, channel, purpose, status, decided_at
    )
    await _enqueue(session, [root])


async def change_manual_tag(
    session: AsyncSession, external_id: str, tag: str, added: bool, at: datetime
) -> None:
    """Add or remove a manual tag as of ``at`` (``ce-time``); an older change than the one held
    is ignored."""
    if await _erased(session, external_id, at):
        return
    repo = ProjectionRepository(session)
    if added:
        root = await repo.add_tag(external_id, tag, "manual", at)
    else:
        root = await repo.remove_tag(external_id, tag, "manual", at)
    await _enqueue(session, [root])


async def change_tier(
    session: AsyncSession, external_id: str, tier: str, changed_at: datetime, *, sent_at: datetime
) -> None:
    """Take the customer's loyalty tier unless a newer tier change was applied."""
    if await _erased(session, external_id, sent_at):
        return
    values = {"tier": tier, "tier_changed_at": changed_at}
    root = await ProjectionRepository(session).upsert_loyalty(
        external_id, values, "tier_changed_at"
    )
    await _enqueue(session, [root])


async def change_membership(
    session: AsyncSession,
    external_id: str,
    plan: str,
    status: str,
    expires_at: datetime | None,
    changed_at: datetime,
    *,
    sent_at: datetime,
) -> None:
    """Take the customer's paid membership unless a newer membership change was applied."""
    if await _erased(session, external_id, sent_at):
        return
    values = {
        "membership_plan": plan,
        "membership_status": status,
        "membership_expires_at": expires_at,
        "membership_changed_at": changed_at,
    }
    root = await ProjectionRepository(session).upsert_loyalty(
        external_id, values, "membership_changed_at"
    )
    await _enqueue(session, [root])


async def change_item(
    session: AsyncSession,
    sku: str,
    category: str | None,
    launched_at: datetime | None,
    at: datetime,
) -> None:
    """Take an item's category and launch date as of ``at`` (``ce-time``).

    When either changed, every buyer of the item is queued: rules on categories and on buying
    within N days of a launch may now decide differently for them.
    """
    repo = ProjectionRepository(session)
    _, changed = await repo.upsert_item(sku, category, launched_at, at)
    if changed:
        await repo.enqueue_buyers(sku)
