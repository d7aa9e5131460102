"""Erased external ids: late events about an erased customer must not re-create its data.

Profile's erasure event names the erased customers' internal ids (kept in ``erased_customer``,
which guards the customer projection) and their external ids. Orders, behaviour, consents,
tags and loyalty events name customers by external id only, so segment keeps a tombstone per
erased external id in ``erased_external_id``: its SHA-256 digest and the erasure time.

Why a digest: the table must hold nothing readable about the erased customer. A plain
(unkeyed) SHA-256 of the id's UTF-8 bytes is enough for that and needs no secret that would
have to stay the same forever (rotating an HMAC key would silently forget every tombstone);
operators can still check one id with ``sha256(convert_to('<id>', 'UTF8'))`` in SQL. What it
does not prevent is confirming a guess: whoever already knows an id and can read the table can
tell that it was erased, which is the very question the table exists to answer.

Which events are skipped: those about a tombstoned id whose ``ce-time`` (the time the producer
emitted the event) is not after the erasure. A late event was necessarily emitted before the
erasure; an event emitted afterwards is about a genuinely new customer that reuses the id (the
shop may recycle ids), and is accepted. The ``ce-time`` is used rather than the fact's own time
(``placed_at``, ``occurred_at``): a new customer's imported history may be dated before the
erasure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, LargeBinary, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.customers.repository import CustomerRepository
from crm_segment.models import ErasedExternalId


def digest(external_id: str) -> bytes:
    """The tombstone key of ``external_id``: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(external_id.encode()).digest()


def erased_since_sql(external_id: ColumnElement[Any], sent_at: datetime) -> ColumnElement[bool]:
    """SQL: the customer ``external_id`` (a column) was erased at or after ``sent_at``; the same
    test as :func:`erased_since`, for a set-based statement over a batch of events."""
    key = func.sha256(func.convert_to(external_id, "UTF8"), type_=LargeBinary)
    return exists(
        select(ErasedExternalId.digest).where(
            ErasedExternalId.digest == key, ErasedExternalId.erased_at >= sent_at
        )
    )


async def erased_since(
    session: AsyncSession, external_ids: Iterable[str | None], sent_at: datetime
) -> set[str]:
    """Which of ``external_ids`` were erased at or after ``sent_at`` (an event's ``ce-time``):
    an event about them sent then is late and must be skipped. One query for the whole batch."""
    by_digest = {digest(i): i for i in set(external_ids) if i is not None}
    found = await CustomerRepository(session).tombstoned_digests(list(by_digest), sent_at)
    return {by_digest[d] for d in found}
