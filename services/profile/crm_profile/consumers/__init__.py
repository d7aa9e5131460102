"""Durable consumers of the profile worker."""

from crm_common.events import Subscription
from crm_profile.config import settings
from crm_profile.consumers.exports import export_subscriptions
from crm_profile.consumers.segment_tags import SUBSCRIPTION as SEGMENT_TAGS

#: Every subscription of this service; ``docs/events.md`` is checked against it.
SUBSCRIPTIONS: list[Subscription] = [
    SEGMENT_TAGS,
    # One per service in PROFILE_EXPORT_PARTS: each answers crm.profile.export.requested.
    *export_subscriptions(settings.export_parts),
]
