"""Durable consumers of the segment worker."""

from crm_common.events import Subscription
from crm_segment.consumers.loyalty_events import MEMBERSHIPS as LOYALTY_MEMBERSHIPS
from crm_segment.consumers.loyalty_events import TIERS as LOYALTY_TIERS
from crm_segment.consumers.profile_consents import SUBSCRIPTION as PROFILE_CONSENTS
from crm_segment.consumers.profile_customers import SUBSCRIPTION as PROFILE_CUSTOMERS
from crm_segment.consumers.profile_exports import SUBSCRIPTION as PROFILE_EXPORTS
from crm_segment.consumers.profile_interactions import SUBSCRIPTION as PROFILE_INTERACTIONS
from crm_segment.consumers.profile_orders import SUBSCRIPTION as PROFILE_ORDERS
from crm_segment.consumers.profile_tags import SUBSCRIPTION as PROFILE_TAGS
from crm_segment.consumers.recommend_items import SUBSCRIPTION as RECOMMEND_ITEMS

#: Every subscription of this service; ``docs/events.md`` is checked against it.
SUBSCRIPTIONS: list[Subscription] = [
    PROFILE_CUSTOMERS,
    PROFILE_EXPORTS,
    PROFILE_ORDERS,
    PROFILE_INTERACTIONS,
    PROFILE_CONSENTS,
    PROFILE_TAGS,
    LOYALTY_TIERS,
    LOYALTY_MEMBERSHIPS,
    RECOMMEND_ITEMS,
]
