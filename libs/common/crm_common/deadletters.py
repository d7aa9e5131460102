"""Operator API over a service's dead-lettered messages: list them, replay one, discard one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.auth import require_scopes
from crm_common.db import SessionDep
from crm_common.errors import Conflict, CrmError, InvalidCursor, NotFound
from crm_common.events.envelope import Envelope, EnvelopeError
from crm_common.events.inbox import Subscription
from crm_common.repository import decode_cursor, encode_cursor

__all__ = [
    "DeadLetter",
    "DeadLetterId",
    "DeadLetterPage",
    "ReplayFailed",
    "ReplayResult",
    "dead_letter_router",
]

#: Ids are ``bigint``: a larger number cannot name a row (and would make the query fail).
DeadLetterId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class DeadLetter(BaseModel):
    """A message a consumer could not process."""

    id: int
    consumer: str
    subject: str
    event_id: str | None
    error: str
    deliveries: int
    created_at: datetime
    headers: dict[str, Any]


class DeadLetterPage(BaseModel):
    """A page of dead letters, oldest first."""

    items: list[DeadLetter]
    next_cursor: str | None


class ReplayResult(BaseModel):
    """What replaying a dead letter did."""

    id: int
    outcome: str


class ReplayFailed(CrmError):
    """The handler failed again; the dead letter is kept."""

    status_code = 409
    slug = "replay-failed"
    title = "Replay failed"


def dead_letter_router(
    service: str, dead_letter: Table, inbox: Table, subscriptions: Sequence[Subscription]
) -> APIRouter:
    """``/v1/dead-letters`` for ``service``; every route needs ``<service>:admin``."""
    admin = Depends(require_scopes(f"{service}:admin"))
    router = APIRouter(prefix="/v1/dead-letters", tags=["operations"], dependencies=[admin])
    handlers = {s.durable: s for s in subscriptions}
    not_found: dict[int | str, dict[str, Any]] = {404: {"description": "No such dead letter"}}

    @router.get(
        "",
        response_model=DeadLetterPage,
        summary="List dead-lettered messages",
        responses=InvalidCursor.schema(),
    )
    async def list_dead_letters(
        session: SessionDep,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        consumer: str | None = None,
    ) -> DeadLetterPage:
        """Oldest first; filter by consumer (durable name)."""
        stmt = select(dead_letter).order_by(dead_letter.c.id).limit(limit + 1)
        if consumer:
            stmt = stmt.where(dead_letter.c.consumer == consumer)
        if cursor:
            after = decode_cursor(cursor, 1)[0]
            if type(after) is not int or not 0 <= after < 2**63:  # a forged or foreign cursor
                raise InvalidCursor("cursor does not name a dead letter position")
            stmt = stmt.where(dead_letter.c.id > after)
        rows = (await session.execute(stmt)).mappings().all()
        items = [DeadLetter.model_validate(dict(r)) for r in rows[:limit]]
        return DeadLetterPage(
            items=items, next_cursor=encode_cursor([items[-1].id]) if len(rows) > limit else None
        )

    @router.post(
        "/{dead_letter_id}/replay",
        response_model=ReplayResult,
        summary="Run the consumer's handler on a dead letter again",
        responses={
            **not_found,
            409: {"description": "Replay failed or message cannot be replayed"},
        },
    )
    async def replay(dead_letter_id: DeadLetterId, session: SessionDep) -> ReplayResult:
        """Runs in this request's transaction: the effect, the inbox row and the removal commit together."""
        row = (
            (
                await session.execute(
                    select(dead_letter).where(dead_letter.c.id == dead_letter_id).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"dead letter {dead_letter_id} does not exist")
        sub = handlers.get(row["consumer"])
        if sub is None:
            raise Conflict(f"consumer {row['consumer']!r} no longer exists in this service")
        try:
            envelope = Envelope.from_message(row["subject"], row["headers"], row["body"])
        except EnvelopeError as exc:
            raise Conflict(f"message is not a valid event: {exc}") from exc
        claimed = await session.execute(
            pg_insert(inbox)
            .values(consumer=sub.durable, event_id=envelope.id, subject=envelope.subject)
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        )
        outcome = "duplicate"
        if claimed.first() is not None:
            try:
                async with session.begin_nested():
                    await sub.handler(session, envelope)
            except Exception as exc:
                raise ReplayFailed(f"{type(exc).__name__}: {exc}") from exc
            outcome = "handled"
        await session.execute(delete(dead_letter).where(dead_letter.c.id == dead_letter_id))
        return ReplayResult(id=dead_letter_id, outcome=outcome)

    @router.delete(
        "/{dead_letter_id}", status_code=204, summary="Discard a dead letter", responses=not_found
    )
    async def discard(dead_letter_id: DeadLetterId, session: SessionDep) -> None:
        """Remove it for good."""
        result = await session.execute(
            delete(dead_letter)
            .where(dead_letter.c.id == dead_letter_id)
            .returning(dead_letter.c.id)
        )
        if result.first() is None:
            raise NotFound(f"dead letter {dead_letter_id} does not exist")

    return router
