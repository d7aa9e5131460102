"""Event plumbing: envelope, outbox and inbox."""

from crm_common.broker import stream_name
from crm_common.events.envelope import (
    Envelope,
    EnvelopeError,
    EventType,
    build_subject,
    unpack_body,
    validate_subject,
)
from crm_common.events.inbox import (
    Consumer,
    Handler,
    PoisonMessage,
    Subscription,
    by_subject,
    make_dead_letter_table,
    make_inbox_table,
)
from crm_common.events.outbox import Outbox, OutboxRelay, make_outbox_table

__all__ = [
    "Consumer",
    "Envelope",
    "EnvelopeError",
    "EventType",
    "Handler",
    "Outbox",
    "OutboxRelay",
    "PoisonMessage",
    "Subscription",
    "build_subject",
    "by_subject",
    "make_dead_letter_table",
    "make_inbox_table",
    "make_outbox_table",
    "stream_name",
    "unpack_body",
    "validate_subject",
]
