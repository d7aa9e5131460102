"""Business rules of orders: idempotent intake, the status machine, refunds."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import FieldError, UnprocessableEntity
from crm_profile.customers import service as customers
from crm_profile.customers.repository import CustomerRepository
from crm_profile.events import (
    ORDER_PLACED,
    ORDER_REFUNDED,
    ORDER_STATUS_CHANGED,
    OrderLineV1,
    OrderPlacedV1,
    OrderRefundedV1,
    OrderStatusChangedV1,
    RefundLineV1,
)
from crm_profile.models import Customer, Order, OrderLine, Refund, outbox
from crm_profile.orders.errors import (
    IdempotencyKeyReused,
    IllegalStatusTransition,
    OrderConflict,
    OrderNotFound,
    RefundExceedsPaid,
    RefundExceedsUnits,
)
from crm_profile.orders.repository import OrderRepository
from crm_profile.orders.schemas import (
    OrderCreate,
    OrderLineRead,
    OrderPage,
    OrderRead,
    RefundCreate,
    RefundLineIn,
    RefundLineRead,
    RefundRead,
    StatusChange,
    StatusChangeRead,
    subtotal_of,
)

#: The status machine: each status and the ones it may move to. Steps are not skipped, so every
#: delivered order announced ``paid`` and ``shipped`` first; cancelling is possible until shipped.
TRANSITIONS: dict[str, frozenset[str]] = {
    "placed": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset({"delivered"}),
    "delivered": frozenset(),
    "cancelled": frozenset(),
}
#: Fields of a stored order compared with a resubmission to name what differs.
CONTENT_FIELDS = (
    "external_id",
    "customer_external_id",
    "placed_at",
    "currency",
    "discount_minor",
    "shipping_minor",
    "total_minor",
    "channel",
    "coupon_codes",
    "points_redeemed",
)
_ORDER_FIELDS = tuple(f for f in OrderRead.model_fields if f not in ("lines", "status_history"))


def content_hash(body: OrderCreate) -> str:
    """SHA-256 of the validated body as canonical JSON (sorted keys, UTC times, defaults in)."""
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


# --- reading -------------------------------------------------------------------------------


async def views(session: AsyncSession, orders: Sequence[Order]) -> list[OrderRead]:
    """``orders`` with their lines and status history (two queries for any number of orders)."""
    repo = OrderRepository(session)
    ids = [o.id for o in orders]
    lines: dict[uuid.UUID, list[OrderLineRead]] = defaultdict(list)
    history: dict[uuid.UUID, list[StatusChangeRead]] = defaultdict(list)
    for line in await repo.lines(ids):
        lines[line.order_id].append(OrderLineRead.model_validate(line))
    for change in await repo.history(ids):
        history[change.order_id].append(StatusChangeRead.model_validate(change))
    return [
        OrderRead(
            **{f: getattr(o, f) for f in _ORDER_FIELDS},
            lines=lines[o.id],
            status_history=history[o.id],
        )
        for o in orders
    ]


async def view(session: AsyncSession, order: Order) -> OrderRead:
    """One order with its lines and status history."""
    return (await views(session, [order]))[0]


async def get(session: AsyncSession, external_id: str, *, for_update: bool = False) -> Order:
    """The order with this external id; 404 otherwise."""
    order = await OrderRepository(session).by_external_id(external_id, for_update=for_update)
    if order is None:
        raise OrderNotFound(f"no order with external id {external_id!r}")
    return order


async def list_for_customer(
    session: AsyncSession, customer: Customer, *, cursor: str | None, limit: int
) -> OrderPage:
    """Orders of ``customer`` and of every duplicate merged into it, newest first."""
    group = await CustomerRepository(session).group_ids(customer.id)
    page = await OrderRepository(session).page_for_customers(group, cursor=cursor, limit=limit)
    return OrderPage(items=await views(session, page.items), next_cursor=page.next_cursor)


# --- intake --------------------------------------------------------------------------------


async def place(
    session: AsyncSession, body: OrderCreate, idempotency_key: str | None
) -> tuple[OrderRead, bool]:
    """Record an order (``True``) or return the one already received with the same content."""
    repo = OrderRepository(session)
    digest = content_hash(body)
    if idempotency_key is not None:
        prior = await repo.request_key(idempotency_key)
        if prior is not None:
            if prior.content_hash != digest:
                raise _key_reused(idempotency_key)
            order = await repo.by_id(prior.order_id)
            assert order is not None  # the key row cascades away with its order
            return await view(session, order), False
    order, created = await _place(session, repo, body, digest)
    if idempotency_key is not None and not await repo.save_request_key(
        idempotency_key, order.id, digest
    ):
        # A concurrent request with the same key committed first: fine if it sent this body.
        prior = await repo.request_key(idempotency_key)
        if prior is None or prior.content_hash != digest:
            raise _key_reused(idempotency_key)
    return await view(session, order), created


async def _place(
    session: AsyncSession, repo: OrderRepository, body: OrderCreate, digest: str
) -> tuple[Order, bool]:
    """Insert the order unless its external id exists; compare content when it does."""
    existing = await repo.by_external_id(body.external_id)
    if existing is None:
        await customers.ensure(session, body.customer_external_id)
        # The order belongs to the row it arrived for, even when that row was merged away.
        customer = await CustomerRepository(session).by_external_id(body.customer_external_id)
        assert customer is not None
        order_id = await repo.insert(_order_values(body, customer.id, digest))
        if order_id is not None:
            return await _record_new(session, repo, order_id, body), True
        existing = await repo.by_external_id(body.external_id)  # inserted concurrently
        assert existing is not None
    if existing.content_hash != digest:
        differing = await _differences(repo, existing, body)
        raise OrderConflict(
            f"order {body.external_id!r} was already received with different "
            f"{', '.join(differing) or 'content'}",
            errors=[
                FieldError(
                    field=f"body.{f}", reason="differs from the order received", code="conflict"
                )
                for f in differing
            ],
        )
    return existing, False


def _order_values(body: OrderCreate, customer_id: uuid.UUID, digest: str) -> dict[str, Any]:
    """Column values of a new order."""
    return {
        "id": uuid.uuid4(),
        "external_id": body.external_id,
        "customer_id": customer_id,
        "customer_external_id": body.customer_external_id,
        "placed_at": body.placed_at,
        "currency": body.currency,
        "subtotal_minor": subtotal_of(body.lines),
        "discount_minor": body.discount_minor,
        "shipping_minor": body.shipping_minor,
        "total_minor": body.total_minor,
        "refunded_minor": 0,
        "channel": body.channel,
        "coupon_codes": body.coupon_codes,
        "points_redeemed": body.points_redeemed,
        "status": "placed",
        "content_hash": digest,
    }


async def _record_new(
    session: AsyncSession, repo: OrderRepository, order_id: uuid.UUID, body: OrderCreate
) -> Order:
    """Lines, the first status row and ``crm.profile.order.placed`` of a new order."""
    await repo.add_lines(order_id, [line.model_dump() for line in body.lines])
    await repo.add_status_change(order_id, "placed", body.placed_at)
    order = await repo.by_id(order_id)
    assert order is not None
    event = OrderPlacedV1(
        order_id=str(order.id),
        order_external_id=order.external_id,
        customer_external_id=order.customer_external_id,
        placed_at=order.placed_at,
        currency=order.currency,
        lines=[OrderLineV1(**line.model_dump()) for line in body.lines],
        subtotal_minor=order.subtotal_minor,
        discount_minor=order.discount_minor,
        shipping_minor=order.shipping_minor,
        total_minor=order.total_minor,
        channel=order.channel,
        coupon_codes=list(order.coupon_codes),
        points_redeemed=order.points_redeemed,
    )
    await outbox.enqueue(session, ORDER_PLACED.envelope(event, subject_id=order.external_id))
    return order


async def _differences(repo: OrderRepository, order: Order, body: OrderCreate) -> list[str]:
    """Names of the fields in which ``body`` differs from the stored ``order``."""
    sent = body.model_dump()
    differing = [f for f in CONTENT_FIELDS if getattr(order, f) != sent[f]]
    stored_lines = [
        {
            "sku": x.sku,
            "quantity": x.quantity,
            "unit_price_minor": x.unit_price_minor,
            "category": x.category,
        }
        for x in await repo.lines([order.id])
    ]
    if stored_lines != sent["lines"]:
        differing.append("lines")
    return sorted(differing)


def _key_reused(key: str) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f"Idempotency-Key {key!r} was already used with a different request",
        errors=[
            FieldError(
                field="header.Idempotency-Key",
                reason="already used with a different request",
                code="conflict",
            )
        ],
    )


# --- status --------------------------------------------------------------------------------


async def change_status(
    session: AsyncSession, external_id: str, body: StatusChange
) -> tuple[OrderRead, bool]:
    """Move the order along the status machine; ``False`` when it already had that status."""
    order = await get(session, external_id, for_update=True)
    if body.status == order.status:
        return await view(session, order), False
    if body.status not in TRANSITIONS[order.status]:
        allowed = sorted(TRANSITIONS[order.status])
        raise IllegalStatusTransition(
            f"order {external_id!r} cannot move from {order.status!r} to {body.status!r}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else f" ({order.status} is final)")
        )
    changed_at = body.changed_at or datetime.now(UTC)
    if changed_at < order.placed_at:
        raise UnprocessableEntity(
            "changed_at is before the order was placed",
            errors=[
                FieldError(
                    field="body.changed_at",
                    reason=f"must not be before placed_at ({order.placed_at.isoformat()})",
                    code="value_error",
                )
            ],
        )
    previous = order.status
    repo = OrderRepository(session)
    await repo.set_status(order, body.status)
    await repo.add_status_change(order.id, body.status, changed_at)
    event = OrderStatusChangedV1(
        order_external_id=order.external_id,
        customer_external_id=order.customer_external_id,
        status=body.status,
        previous_status=previous,
        changed_at=changed_at,
    )
    await outbox.enqueue(
        session, ORDER_STATUS_CHANGED.envelope(event, subject_id=order.external_id)
    )
    return await view(session, order), True


# --- refunds -------------------------------------------------------------------------------


async def refund(
    session: AsyncSession, external_id: str, body: RefundCreate, idempotency_key: str | None
) -> tuple[RefundRead, bool]:
    """Refund lines or an amount (``True``), or return the refund made under the same key.

    The order row stays locked until commit, so concurrent refunds of one order run one after
    the other and each sees what the previous one refunded.
    """
    repo = OrderRepository(session)
    order = await get(session, external_id, for_update=True)
    if idempotency_key is not None and (prior := await repo.refund_by_key(idempotency_key)):
        if prior.order_id != order.id or not _same_request(prior, body):
            raise _key_reused(idempotency_key)
        return _refund_read(prior, order), False
    remaining = await _refundable(repo, order)
    units: dict[int, int] = {}
    if body.lines is not None:
        lines = await repo.lines([order.id])
        units = _allocate(lines, body.lines)
        amount = min(_line_value(order, lines, units), remaining)
    else:
        assert body.amount_minor is not None
        amount = body.amount_minor
        if amount > remaining:
            raise _exceeds_paid(
                order, remaining, f"at most {remaining} can still be refunded", "body.amount_minor"
            )
    created = await repo.insert_refund(
        {
            "order_id": order.id,
            "amount_minor": amount,
            "lines": [line.model_dump() for line in body.lines or []],
            "reason": body.reason,
            "idempotency_key": idempotency_key,
        }
    )
    if created is None:  # the key was taken meanwhile by a refund of another order
        raise _key_reused(str(idempotency_key))
    # Both guards are already implied by the lock and the checks above; the statements still
    # refuse to over-refund on their own.
    if await repo.refund_units(order.id, units) != len(units):  # pragma: no cover
        raise RefundExceedsUnits("units were refunded concurrently; retry")
    if not await repo.add_refunded(order, amount):  # pragma: no cover
        raise RefundExceedsPaid("the order was refunded concurrently; retry")
    await _publish_refund(session, order, created)
    return _refund_read(created, order), True


async def _refundable(repo: OrderRepository, order: Order) -> int:
    """What is left of what was paid; 409 when nothing is.

    An order counts as paid from ``placed`` on (shops send orders once payment is captured),
    unless it was cancelled before it reached ``paid``: then nothing was paid.
    """
    if order.status == "cancelled" and not await repo.ever_had_status(order.id, "paid"):
        raise _exceeds_paid(
            order, 0, "the order was cancelled before payment; nothing was paid", field="body"
        )
    remaining = order.total_minor - order.refunded_minor
    if remaining <= 0:
        raise _exceeds_paid(order, 0, "the order is fully refunded", field="body")
    return remaining


def _exceeds_paid(order: Order, remaining: int, reason: str, field: str) -> RefundExceedsPaid:
    return RefundExceedsPaid(
        f"order {order.external_id!r}: {reason} (refundable: {remaining})",
        errors=[FieldError(field=field, reason=reason, code="refund_exceeds_paid")],
    )


def _allocate(lines: list[OrderLine], requested: list[RefundLineIn]) -> dict[int, int]:
    """Line number → units to refund, taking each SKU's units from its lines in order."""
    unknown = [
        FieldError(
            field=f"body.lines[{i}].sku", reason="not a SKU of this order", code="unknown_sku"
        )
        for i, want in enumerate(requested)
        if not any(line.sku == want.sku for line in lines)
    ]
    if unknown:
        raise UnprocessableEntity(f"{len(unknown)} SKU(s) not in the order", errors=unknown)
    too_many = []
    units: dict[int, int] = {}
    for i, want in enumerate(requested):
        candidates = [line for line in lines if line.sku == want.sku]
        available = sum(line.quantity - line.refunded_quantity for line in candidates)
        if want.quantity > available:
            too_many.append(
                FieldError(
                    field=f"body.lines[{i}].quantity",
                    reason=f"at most {available} unit(s) of {want.sku!r} can still be refunded",
                    code="refund_exceeds_units",
                )
            )
            continue
        left = want.quantity
        for line in candidates:
            take = min(left, line.quantity - line.refunded_quantity)
            if take > 0:
                units[line.line_no] = take
                left -= take
    if too_many:
        raise RefundExceedsUnits(
            "; ".join(e.reason for e in too_many) + " (bought minus already refunded)",
            errors=too_many,
        )
    return units


def _line_value(order: Order, lines: list[OrderLine], units: dict[int, int]) -> int:
    """Money back for ``units``: their price less their share of the order discount.

    The discount is spread over the lines in proportion to their price and computed on the
    running total of refunded units (``share(after) - share(before)``, each rounded down), so
    refunding every unit, in any number of refunds, gives back exactly subtotal − discount.
    """
    price = {line.line_no: line.unit_price_minor for line in lines}
    before = sum(line.refunded_quantity * line.unit_price_minor for line in lines)
    after = before + sum(quantity * price[no] for no, quantity in units.items())
    return _net_share(order, after) - _net_share(order, before)


def _net_share(order: Order, gross: int) -> int:
    """The part of subtotal − discount that ``gross`` of the subtotal stands for, rounded down."""
    if order.subtotal_minor == 0:
        return 0
    return gross * (order.subtotal_minor - order.discount_minor) // order.subtotal_minor


def _same_request(prior: Refund, body: RefundCreate) -> bool:
    """True when ``body`` asks for what the refund ``prior`` was made for."""
    if prior.reason != body.reason:
        return False
    if body.lines is None:
        return not prior.lines and prior.amount_minor == body.amount_minor
    return prior.lines == [line.model_dump() for line in body.lines]


def _refund_read(refund: Refund, order: Order) -> RefundRead:
    return RefundRead(
        id=refund.id,
        order_external_id=order.external_id,
        amount_minor=refund.amount_minor,
        lines=[RefundLineRead(**line) for line in refund.lines],
        reason=refund.reason,
        created_at=refund.created_at,
        refunded_total_minor=order.refunded_minor,
    )


async def _publish_refund(session: AsyncSession, order: Order, refund: Refund) -> None:
    """``crm.profile.order.refunded`` for ``refund`` (``order`` already holds the new total)."""
    event = OrderRefundedV1(
        refund_id=str(refund.id),
        order_external_id=order.external_id,
        customer_external_id=order.customer_external_id,
        currency=order.currency,
        amount_minor=refund.amount_minor,
        refunded_total_minor=order.refunded_minor,
        total_minor=order.total_minor,
        fully_refunded=order.refunded_minor == order.total_minor,
        lines=[RefundLineV1(**line) for line in refund.lines],
        refunded_at=refund.created_at,
    )
    await outbox.enqueue(session, ORDER_REFUNDED.envelope(event, subject_id=order.external_id))
