"""Events the loyalty service publishes (its payload models and subjects)."""

from typing import Any

from crm_common.events import EventType

#: Every event this service publishes; ``docs/events.md`` is checked against it.
PUBLISHED: list[EventType[Any]] = []
