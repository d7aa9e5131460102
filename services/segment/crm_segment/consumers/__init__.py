"""Durable consumers of the segment worker."""

from crm_common.events import Subscription
from crm_segment.consumers.profile_customers import SUBSCRIPTION as PROFILE_CUSTOMERS
from crm_segment.consumers.profile_exports import SUBSCRIPTION as PROFILE_EXPORTS

#: Every subscription of this service; ``docs/events.md`` is checked against it.
SUBSCRIPTIONS: list[Subscription] = [PROFILE_CUSTOMERS, PROFILE_EXPORTS]
