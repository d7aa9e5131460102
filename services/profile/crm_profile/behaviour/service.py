"""Rules of the behaviour intake: validate each event on its own, store the new ones, announce them.

A batch is decoded and validated in one pass by msgspec when every event is valid (the common
case, ``fastpath``); any other body is parsed again by pydantic (``schemas``), item by item when
it has bad events, so that each bad one is reported by its index, with pydantic's messages,
while the good ones are stored. Either way the valid events end up as ``fastpath`` structs, from
which the rows and the published views are built. The batch's rows are stored set-based (one
``COPY``, or one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`` when some ids
were stored before), and one ``crm.profile.interaction.recorded`` message carries every newly
stored event. Where the time goes, and what was tried, is in bench/README.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, cast

import msgspec
import orjson
from msgspec import UNSET
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import BadRequest, FieldError, UnprocessableEntity, field_errors
from crm_common.events import Envelope
from crm_profile.behaviour import fastpath
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
from crm_profile.database import driver_connection
from crm_profile.events import INTERACTION_RECORDED
from crm_profile.models import outbox

#: Largest body read; a valid batch of 1,000 realistic events is well under 1 MiB.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Largest ``interaction.recorded`` body: NATS refuses messages over 1 MiB (``max_payload``),
#: and a relay that cannot publish a row would retry it forever. Bounded fields keep 1,000
#: events under this in practice; a batch that still is not is split over several messages.
MAX_MESSAGE_BYTES = 768 * 1024

_BATCH: TypeAdapter[EventBatch] = TypeAdapter(EventBatch)
_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(Event)
_NO_PROPERTIES = "{}"
_ENCODE = msgspec.json.Encoder().encode


class View(msgspec.Struct, gc=False, kw_only=True, omit_defaults=True):
    """The published, personal-data-free view of an event: ``InteractionV1`` field for field.

    A struct rather than the model: validating 1,000 payload models would cost more than the
    rest of the request (bench/README.md); the tests check the payload against the model.
    Null fields are left out of the JSON, as the contract says (``omit_defaults``).
    """

    event_id: str
    type: str
    customer_external_id: str | None = None
    anonymous_id: str | None = None
    occurred_at: str
    sku: str | None = None
    category: str | None = None
    value_minor: int | None = None
    quantity: int | None = None
    currency: str | None = None
    rating: int | None = None
    placement: str | None = None
    strategy: str | None = None
    experiment: str | None = None
    variant: str | None = None


@dataclass
class Parsed:
    """A batch after validation: the valid events by index (with their time), the refused ones."""

    events: list[tuple[int, fastpath.Event, datetime]]
    rejected: list[RejectedEvent] = field(default_factory=list)


def parse(body: bytes) -> Parsed:
    """Validate a request body; 400 when it is not JSON, 422 when it is not a batch of 1-1,000.

    msgspec decodes and validates a valid batch in one pass (``fastpath``); any other body is
    parsed again by pydantic, whose errors are the ones reported.
    """
    fast = fastpath.decode(body)
    if fast is not None:
        return Parsed([(index, event, at) for index, (event, at) in enumerate(fast)])
    return parse_slowly(body)


def parse_slowly(body: bytes) -> Parsed:
    """:func:`parse` by pydantic alone: the whole batch, or item by item when it has bad ones."""
    try:
        batch = _BATCH.validate_json(body)
    except ValidationError:
        return _parse_items(body)
    items = cast(list[dict[str, Any]], batch["events"])
    return Parsed([(index, *fastpath.from_validated(item)) for index, item in enumerate(items)])


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
            valid = cast(dict[str, Any], _EVENT.validate_python(item))
        except ValidationError as exc:
            event_id = item.get("event_id")
            parsed.rejected.append(
                RejectedEvent(
                    index=index,
                    event_id=event_id if isinstance(event_id, str) else None,
                    errors=_item_errors(exc),
                )
            )
        else:
            parsed.events.append((index, *fastpath.from_validated(valid)))
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


def _admit(parsed: Parsed, now: datetime) -> tuple[list[tuple[fastpath.Event, datetime]], int]:
    """The valid events to store (first copy of each id), and how many repeated an id."""
    oldest = now - timedelta(days=settings.event_horizon_days)
    latest = now + timedelta(seconds=settings.event_clock_skew_seconds)
    fresh: list[tuple[fastpath.Event, datetime]] = []
    seen: set[str] = set()
    duplicates = 0
    for index, event, occurred_at in parsed.events:
        if not (event.customer_external_id or event.anonymous_id) or not (
            oldest <= occurred_at <= latest
        ):
            errors = _rule_errors(event, occurred_at, oldest, latest)
            parsed.rejected.append(
                RejectedEvent(index=index, event_id=event.event_id, errors=errors)
            )
        elif event.event_id in seen:
            duplicates += 1
        else:
            seen.add(event.event_id)
            fresh.append((event, occurred_at))
    return fresh, duplicates


def _rule_errors(
    event: fastpath.Event, occurred_at: datetime, oldest: datetime, latest: datetime
) -> list[FieldError]:
    """What the schema cannot check: an identity, and a time inside the accepted window."""
    errors = []
    if not (event.customer_external_id or event.anonymous_id):
        errors.append(
            FieldError(
                field="customer_external_id",
                reason="an event needs customer_external_id or anonymous_id",
                code="missing_identity",
            )
        )
    if occurred_at < oldest:
        reason = f"older than the {settings.event_horizon_days}-day horizon"
        errors.append(FieldError(field="occurred_at", reason=reason, code="too_old"))
    if occurred_at > latest:
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


async def _store(
    session: AsyncSession, events: list[tuple[fastpath.Event, datetime]]
) -> list[View]:
    """Store ``events`` (unique ids) set-based; the views of the new ones, in request order."""
    if not events:
        return []
    external_ids: set[str] = set()
    anonymous_ids: set[str] = set()
    for event, _ in events:
        if event.customer_external_id is not None:
            external_ids.add(event.customer_external_id)
        elif event.anonymous_id:
            anonymous_ids.add(event.anonymous_id)
    customers = await ensure_many(session, external_ids)
    repo = BehaviourRepository(session)
    linked = await repo.linked_customers(anonymous_ids)
    views, rows = _views_and_rows(events, customers, linked)
    # Sorted by event id (each row's first field), so concurrent batches sharing ids take
    # their index locks in the same order.
    rows.sort(key=itemgetter(0))
    inserted = await repo.add_new(rows)
    if inserted is None:
        return views
    new = set(inserted)
    return [v for v in views if v.event_id in new]


def _value(value: Any) -> Any:
    """A property as published and stored in a column: ``None`` when it was not sent."""
    return None if value is UNSET else value


def _isoformat(sent: str, occurred_at: datetime) -> str:
    """``occurred_at.isoformat()``, from the text sent when that is cheaper (a third of the time).

    ``sent`` matched ``fastpath``'s pattern: a fraction of 1-6 digits or none, then ``Z`` or an
    offset. ``isoformat`` writes 6 digits, none when they are all 0, and ``+00:00`` for ``Z`` and
    ``-00:00``; any other form is formatted from the datetime. The usual one is ``sent`` itself.
    """
    if sent[-1] == "Z":
        core, offset = sent[:-1], "+00:00"
    elif sent[-6] == "+" or sent[-5:] != "00:00":
        size = len(sent)
        if size == 25 or (size == 32 and sent[20:26] != "000000"):
            return sent
        return occurred_at.isoformat()
    else:
        return occurred_at.isoformat()
    if len(core) == 19 or (len(core) == 26 and core[20:] != "000000"):
        return core + offset
    return occurred_at.isoformat()


def _product(view: View, p: Any) -> None:
    view.sku = p.sku
    view.category = _value(p.category)


def _cart(view: View, p: Any) -> None:
    view.sku = p.sku
    view.category = _value(p.category)
    view.quantity = p.quantity
    price = _value(p.unit_price_minor)
    view.value_minor = None if price is None else price * p.quantity


def _checkout(view: View, p: Any) -> None:
    if p is not UNSET:
        view.currency = _value(p.currency)
        view.value_minor = _value(p.cart_value_minor)


def _review(view: View, p: Any) -> None:
    view.sku = p.sku
    view.rating = p.rating


def _recommendation(view: View, p: Any) -> None:
    view.sku = p.sku
    view.placement = _value(p.placement)
    view.strategy = _value(p.strategy)
    view.experiment = _value(p.experiment)
    view.variant = _value(p.variant)


#: What each type's properties add to its view (and to the sku/category/value_minor columns).
_DERIVED: dict[type[fastpath.Event], Callable[[View, Any], None]] = {
    fastpath.ProductView: _product,
    fastpath.AddToCart: _cart,
    fastpath.RemoveFromCart: _cart,
    fastpath.CheckoutStarted: _checkout,
    fastpath.ReviewSubmitted: _review,
    fastpath.RecommendationClicked: _recommendation,
}


#: The ``type`` of each event struct.
_TYPES: dict[type[fastpath.Event], str] = {cls: tag for tag, cls in fastpath.BY_TYPE.items()}


def _views_and_rows(
    events: list[tuple[fastpath.Event, datetime]],
    customers: dict[str, uuid.UUID],
    linked: dict[str, uuid.UUID],
) -> tuple[list[View], list[EventRow]]:
    """Each event's view and stored row; ``customer_id`` is the row it arrived for.

    One loop with the view built inline: at 1,000 events a function call less per event shows.
    """
    views = []
    rows: list[EventRow] = []
    encode = _ENCODE
    for event, occurred_at in events:
        cls = type(event)
        external_id = event.customer_external_id
        anonymous_id = event.anonymous_id
        properties = event.properties
        view = View(
            event_id=event.event_id,
            type=_TYPES[cls],
            customer_external_id=external_id,
            anonymous_id=anonymous_id,
            occurred_at=_isoformat(event.occurred_at, occurred_at),
        )
        derive = _DERIVED.get(cls)
        if derive is not None:
            derive(view, properties)
        views.append(view)
        rows.append(
            (
                view.event_id,
                view.type,
                customers.get(external_id) if external_id else linked.get(anonymous_id),  # type: ignore[arg-type]
                external_id,
                anonymous_id,
                occurred_at,
                view.sku,
                view.category,
                view.value_minor,
                _NO_PROPERTIES if properties is UNSET else encode(properties).decode(),
            )
        )
    return views, rows


async def _announce(session: AsyncSession, views: list[View]) -> None:
    """Enqueue one ``interaction.recorded`` for the stored events (split only if over 768 KiB)."""
    if not views:
        return
    envelopes: list[Envelope] = []
    pending = [views]
    while pending:
        chunk = pending.pop()
        envelope = _envelope(chunk)
        if len(chunk) > 1 and len(envelope.body()) > MAX_MESSAGE_BYTES:
            half = len(chunk) // 2
            pending += [chunk[half:], chunk[:half]]
        else:
            envelopes.append(envelope)
    await outbox.enqueue_many_on(await driver_connection(session), envelopes)


@dataclass
class Announcement(Envelope):
    """An envelope whose ``data`` holds :class:`View` structs, encoded once by msgspec."""

    encoded: bytes = b""

    def body(self) -> bytes:
        """The payload as JSON, as ``Envelope.body`` would give it for the views as dicts."""
        return self.encoded


def _envelope(views: list[View]) -> Announcement:
    """``INTERACTION_RECORDED.envelope`` of ``views``; its ce-subject is the batch's own id."""
    batch_id = uuid.uuid4()
    data = {"interactions": views}
    return Announcement(
        subject=INTERACTION_RECORDED.subject,
        type=INTERACTION_RECORDED.ce_type,
        source=f"/crm/{INTERACTION_RECORDED.service}",
        subject_id=str(batch_id),
        data=data,
        id=batch_id,
        encoded=_ENCODE(data),
    )
