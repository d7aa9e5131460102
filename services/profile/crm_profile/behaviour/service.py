"""Rules of the behaviour intake: validate each event on its own, store the new ones, announce them.

A batch is parsed in one pass when every event is valid (the common case); only a batch with
bad events is parsed again item by item, so that each bad one is reported by its index while
the good ones are stored. The batch's rows are stored set-based (one ``COPY``, or one
``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`` when some ids were stored before),
and one ``crm.profile.interaction.recorded`` message carries every newly stored event.
Where the time goes, and what was tried, is in bench/README.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import BadRequest, FieldError, UnprocessableEntity, field_errors
from crm_common.events import Envelope
from crm_profile.behaviour.repository import BehaviourRepository, EventRow
from crm_profile.behaviour.schemas import (
    EVENT_TYPES,
    AnyEvent,
    BatchResult,
    Event,
    EventBatch,
    RawBatch,
    RejectedEvent,
)
from crm_profile.config import settings
from crm_profile.customers.service import ensure_many
from crm_profile.events import INTERACTION_RECORDED, InteractionV1
from crm_profile.models import outbox

#: Largest body read; a valid batch of 1,000 realistic events is well under 1 MiB.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Largest ``interaction.recorded`` body: NATS refuses messages over 1 MiB (``max_payload``),
#: and a relay that cannot publish a row would retry it forever. Bounded fields keep 1,000
#: events under this in practice; a batch that still is not is split over several messages.
MAX_MESSAGE_BYTES = 768 * 1024

_BATCH: TypeAdapter[EventBatch] = TypeAdapter(EventBatch)
_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(Event)
#: A validated event (one of the ``schemas.Event`` typed dicts), read by key.
Item = dict[str, Any]
#: The properties each type contributes to the published view (and to the sku/category columns).
_VIEW_KEYS: dict[str, tuple[str, ...]] = {
    "product_view": ("sku", "category"),
    "add_to_cart": ("sku", "category", "quantity"),
    "remove_from_cart": ("sku", "category", "quantity"),
    "checkout_started": ("currency",),
    "review_submitted": ("sku", "rating"),
    "recommendation_clicked": ("sku", "placement", "strategy", "experiment", "variant"),
}
_BLANK_VIEW = dict.fromkeys(InteractionV1.model_fields)
_NO_PROPERTIES: dict[str, Any] = {}


@dataclass
class Parsed:
    """A batch after validation: the valid events by index, and the refused ones."""

    events: list[tuple[int, Item]]
    rejected: list[RejectedEvent] = field(default_factory=list)


def parse(body: bytes) -> Parsed:
    """Validate a request body; 400 when it is not JSON, 422 when it is not a batch of 1-1,000."""
    try:
        batch = _BATCH.validate_json(body)
    except ValidationError:
        return _parse_items(body)
    return Parsed(list(enumerate(cast(list[Item], batch["events"]))))


def _parse_items(body: bytes) -> Parsed:
    """Validate the events one by one, keeping the valid ones and each bad one's errors."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            "Request body is not valid JSON",
            errors=[FieldError(field="body", reason=str(exc), code="json_invalid")],
        ) from exc
    try:
        batch = RawBatch.model_validate(raw)
    except ValidationError as exc:
        errors = field_errors([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])
        raise UnprocessableEntity(
            'The body must be {"events": [...]} with 1 to 1,000 events', errors=errors
        ) from exc
    parsed = Parsed([])
    for index, item in enumerate(batch.events):
        if not isinstance(item, dict):
            error = FieldError(field="event", reason="an event must be an object", code="dict_type")
            parsed.rejected.append(RejectedEvent(index=index, errors=[error]))
            continue
        try:
            parsed.events.append((index, cast(Item, _EVENT.validate_python(item))))
        except ValidationError as exc:
            event_id = item.get("event_id")
            parsed.rejected.append(
                RejectedEvent(
                    index=index,
                    event_id=event_id if isinstance(event_id, str) else None,
                    errors=_item_errors(exc),
                )
            )
    return parsed


def _item_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors for one event, named relative to the event (``properties.sku``)."""
    out: list[FieldError] = []
    for error in exc.errors():
        loc = error["loc"]
        if error["type"] == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag")
            reason = f"unknown event type {tag!r}; known types: {', '.join(EVENT_TYPES)}"
            out.append(FieldError(field="type", reason=reason, code="unknown_type"))
        elif error["type"] == "union_tag_not_found":
            out.append(FieldError(field="type", reason="Field required", code="missing"))
        else:  # the first element of the location is the discriminator's tag
            out += field_errors([{**error, "loc": loc[1:]}])
    return out


def _admit(parsed: Parsed, now: datetime) -> tuple[list[Item], int]:
    """The valid events to store (first copy of each id), and how many repeated an id."""
    oldest = now - timedelta(days=settings.event_horizon_days)
    latest = now + timedelta(seconds=settings.event_clock_skew_seconds)
    fresh: list[Item] = []
    seen: set[str] = set()
    duplicates = 0
    for index, event in parsed.events:
        identified = event.get("customer_external_id") or event.get("anonymous_id")
        if not identified or not oldest <= event["occurred_at"] <= latest:
            errors = _rule_errors(event, oldest, latest)
            parsed.rejected.append(
                RejectedEvent(index=index, event_id=event["event_id"], errors=errors)
            )
        elif event["event_id"] in seen:
            duplicates += 1
        else:
            seen.add(event["event_id"])
            fresh.append(event)
    return fresh, duplicates


def _rule_errors(event: Item, oldest: datetime, latest: datetime) -> list[FieldError]:
    """What the schema cannot check: an identity, and a time inside the accepted window."""
    errors = []
    if not (event.get("customer_external_id") or event.get("anonymous_id")):
        errors.append(
            FieldError(
                field="customer_external_id",
                reason="an event needs customer_external_id or anonymous_id",
                code="missing_identity",
            )
        )
    if event["occurred_at"] < oldest:
        reason = f"older than the {settings.event_horizon_days}-day horizon"
        errors.append(FieldError(field="occurred_at", reason=reason, code="too_old"))
    if event["occurred_at"] > latest:
        reason = f"more than {settings.event_clock_skew_seconds} s in the future"
        errors.append(FieldError(field="occurred_at", reason=reason, code="in_future"))
    return errors


async def record(session: AsyncSession, body: bytes) -> BatchResult:
    """Store the batch's valid, new events and enqueue one message announcing them."""
    parsed = parse(body)
    fresh, duplicates = _admit(parsed, datetime.now(UTC))
    views = await _store(session, fresh)
    await _announce(session, views)
    return BatchResult(
        accepted=len(views),
        duplicates=duplicates + len(fresh) - len(views),
        rejected=sorted(parsed.rejected, key=lambda r: r.index),
    )


async def _store(session: AsyncSession, events: list[Item]) -> list[dict[str, Any]]:
    """Store ``events`` (unique ids) set-based; the views of the new ones, in request order."""
    if not events:
        return []
    customers = await ensure_many(
        session, {x for e in events if (x := e.get("customer_external_id")) is not None}
    )
    repo = BehaviourRepository(session)
    linked = await repo.linked_customers(
        {
            a
            for e in events
            if e.get("customer_external_id") is None and (a := e.get("anonymous_id"))
        }
    )
    views, rows = _views_and_rows(events, customers, linked)
    # Sorted by event id (each row's first field), so concurrent batches sharing ids take
    # their index locks in the same order.
    inserted = await repo.add_new(sorted(rows))
    if len(inserted) == len(views):
        return views
    new = set(inserted)
    return [v for v in views if v["event_id"] in new]


def _view(event: Item) -> dict[str, Any]:
    """The published, personal-data-free view of an event (an ``InteractionV1`` as JSON).

    Built as a plain dict: validating 1,000 payload models again would cost more than the
    rest of the request (bench/README.md); the tests check it against ``InteractionV1``.
    """
    properties = event.get("properties") or _NO_PROPERTIES
    view = _BLANK_VIEW.copy()
    view["event_id"] = event["event_id"]
    view["type"] = kind = event["type"]
    view["customer_external_id"] = event.get("customer_external_id")
    view["anonymous_id"] = event.get("anonymous_id")
    view["occurred_at"] = event["occurred_at"].isoformat()
    for key in _VIEW_KEYS.get(kind, ()):
        view[key] = properties.get(key)
    if kind == "add_to_cart" or kind == "remove_from_cart":
        price = properties.get("unit_price_minor")
        view["value_minor"] = None if price is None else price * properties["quantity"]
    elif kind == "checkout_started":
        view["value_minor"] = properties.get("cart_value_minor")
    return view


def _views_and_rows(
    events: list[Item], customers: dict[str, uuid.UUID], linked: dict[str, uuid.UUID]
) -> tuple[list[dict[str, Any]], list[EventRow]]:
    """Each event's view and stored row; ``customer_id`` is the row it arrived for."""
    views = []
    rows: list[EventRow] = []
    for event in events:
        view = _view(event)
        external_id = view["customer_external_id"]
        anonymous_id = view["anonymous_id"]
        views.append(view)
        rows.append(
            (
                view["event_id"],
                view["type"],
                customers.get(external_id) if external_id else linked.get(anonymous_id),
                external_id,
                anonymous_id,
                event["occurred_at"],
                view["sku"],
                view["category"],
                view["value_minor"],
                orjson.dumps(event.get("properties") or _NO_PROPERTIES).decode(),
            )
        )
    return views, rows


async def _announce(session: AsyncSession, views: list[dict[str, Any]]) -> None:
    """Enqueue one ``interaction.recorded`` for the stored events (split only if over 768 KiB)."""
    if not views:
        return
    envelopes = []
    pending = [views]
    while pending:
        chunk = pending.pop()
        envelope = _envelope(chunk)
        if len(chunk) > 1 and len(envelope.body()) > MAX_MESSAGE_BYTES:
            half = len(chunk) // 2
            pending += [chunk[half:], chunk[:half]]
        else:
            envelopes.append(envelope)
    await outbox.enqueue_many(session, envelopes)


def _envelope(views: list[dict[str, Any]]) -> Envelope:
    """``INTERACTION_RECORDED.envelope`` of already JSON-ready views; ce-subject is the batch."""
    batch_id = uuid.uuid4()
    return Envelope(
        subject=INTERACTION_RECORDED.subject,
        type=INTERACTION_RECORDED.ce_type,
        source=f"/crm/{INTERACTION_RECORDED.service}",
        subject_id=str(batch_id),
        data={"interactions": views},
        id=batch_id,
    )
