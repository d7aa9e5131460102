"""Errors of the orders API."""

from crm_common.errors import Conflict, NotFound


class OrderNotFound(NotFound):
    """No order with that external id."""

    slug = "order-not-found"
    title = "Order not found"


class OrderConflict(Conflict):
    """The order's external id was already received with different content."""

    slug = "order-conflict"
    title = "Order already exists with different content"


class IdempotencyKeyReused(Conflict):
    """An ``Idempotency-Key`` sent again with a different request."""

    slug = "idempotency-key-reused"
    title = "Idempotency key was used for a different request"


class IllegalStatusTransition(Conflict):
    """The order cannot move from its status to the one asked for."""

    slug = "illegal-status-transition"
    title = "Illegal order status transition"


class RefundExceedsPaid(Conflict):
    """More money than is left of what was paid."""

    slug = "refund-exceeds-paid"
    title = "Refund exceeds the amount paid"


class RefundExceedsUnits(Conflict):
    """More units of a SKU than were bought and not yet refunded."""

    slug = "refund-exceeds-units"
    title = "Refund exceeds the units bought"
