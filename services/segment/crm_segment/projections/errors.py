"""Errors of the projections (raised in consumers, never seen by the API)."""

from __future__ import annotations


class OrderNotProjectedYet(Exception):
    """A status change or refund arrived before its order was placed here.

    Transient on purpose: the consumer ``nak``-s the message and JetStream redelivers it after
    a delay, by which time the redelivered ``placed`` event has normally been applied.
    """

    def __init__(self, order_external_id: str) -> None:
        """Name the order that is not known yet."""
        super().__init__(f"order {order_external_id!r} is not projected yet")
        self.order_external_id = order_external_id
