"""Consent rules: every decision is kept, the latest one wins, changes are announced once."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_profile.consents.repository import ConsentRepository
from crm_profile.consents.schemas import (
    CHANNELS,
    PURPOSES,
    Channel,
    ConsentDecision,
    ConsentHistoryItem,
    ConsentState,
    Decided,
    MyConsentDecision,
    Purpose,
)
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.service import arrival, resolve
from crm_profile.events import CONSENT_CHANGED, ConsentChangedV1
from crm_profile.models import Customer, outbox


@dataclass(frozen=True)
class Decision:
    """One consent decision as it is recorded."""

    channel: Channel
    purpose: Purpose
    status: Decided
    source: str
    decided_at: datetime


def from_request(
    channel: Channel, body: ConsentDecision | MyConsentDecision, source: str
) -> Decision:
    """The decision a request describes (``decided_at`` defaults to now)."""
    return Decision(
        channel=channel,
        purpose=body.purpose,
        status=body.status,
        source=source,
        decided_at=body.decided_at or datetime.now(UTC),
    )


def _state(channel: Channel, purpose: Purpose, row: Any | None) -> ConsentState:
    """The API view of the effective row for ``channel``/``purpose`` (``unknown`` without one)."""
    if row is None:
        return ConsentState(
            channel=channel, purpose=purpose, status="unknown", source=None, decided_at=None
        )
    return ConsentState.model_validate(row, from_attributes=True)


async def _effective(
    repo: ConsentRepository, group: list[uuid.UUID], channel: Channel, purpose: Purpose
) -> ConsentState:
    """The effective state of ``group`` for one channel and purpose."""
    rows = await repo.effective(group, channel=channel, purpose=purpose)
    return _state(channel, purpose, rows[0] if rows else None)


async def effective_consents(session: AsyncSession, customer: Customer) -> list[ConsentState]:
    """Every channel × purpose for ``customer``'s merge group: the latest decision, or unknown."""
    group = await CustomerRepository(session).group_ids(customer.id)
    rows = {(r.channel, r.purpose): r for r in await ConsentRepository(session).effective(group)}
    return [_state(c, p, rows.get((c, p))) for c in CHANNELS for p in PURPOSES]


async def effective_consent(
    session: AsyncSession, customer: Customer, channel: Channel, purpose: Purpose
) -> ConsentState:
    """The effective decision of ``customer``'s merge group for one channel and purpose."""
    group = await CustomerRepository(session).group_ids(customer.id)
    return await _effective(ConsentRepository(session), group, channel, purpose)


async def record_decision(
    session: AsyncSession,
    customer: Customer,
    decision: Decision,
    *,
    survivor: Customer | None = None,
) -> ConsentState:
    """Keep ``decision`` (made by ``customer``) and return the group's effective state after it.

    The decision always goes into the history; it becomes ``customer``'s current decision only
    when none decided later is stored, so a late-arriving older decision changes nothing.
    ``crm.profile.consent.changed`` is published when the group's effective status changes
    (a first decision counts). Pass ``survivor`` only when the caller already holds its lock.
    """
    if survivor is None:
        _, survivor = await arrival(session, customer.external_id)
    group = await CustomerRepository(session).group_ids(survivor.id)
    repo = ConsentRepository(session)
    before = await _effective(repo, group, decision.channel, decision.purpose)
    values = asdict(decision)
    await repo.add_history(customer.id, values)
    await repo.set_current(customer.id, values)
    after = await _effective(repo, group, decision.channel, decision.purpose)
    if after.status != before.status:  # only this decision can have changed it
        event = ConsentChangedV1(
            customer_id=str(survivor.id), customer_external_id=survivor.external_id, **values
        )
        await outbox.enqueue(
            session, CONSENT_CHANGED.envelope(event, subject_id=survivor.external_id)
        )
    return after


async def decide(session: AsyncSession, external_id: str, decision: Decision) -> ConsentState:
    """Record ``decision`` for the customer ``external_id`` names (merged or not); 404 when unknown."""
    named, survivor = await arrival(session, external_id)
    return await record_decision(session, named, decision, survivor=survivor)


async def history(
    session: AsyncSession,
    customer: Customer,
    *,
    channel: Channel | None,
    purpose: Purpose | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[ConsentHistoryItem], str | None]:
    """A page of the merge group's decisions, latest first."""
    group = await CustomerRepository(session).group_ids(customer.id)
    rows, next_cursor = await ConsentRepository(session).history(
        group, channel=channel, purpose=purpose, cursor=cursor, limit=limit
    )
    return [ConsentHistoryItem.model_validate(r) for r in rows], next_cursor


async def mine(session: AsyncSession, external_id: str) -> Customer:
    """The customer a token's subject names (its survivor when merged); 404 when unknown."""
    return await resolve(session, external_id)
