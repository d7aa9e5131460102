"""Durable consumers of the segment worker."""

from crm_common.events import Subscription

#: Every subscription of this service; ``docs/events.md`` is checked against it.
SUBSCRIPTIONS: list[Subscription] = []
