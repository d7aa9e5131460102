"""Profile's consent decisions → ``customer_consent`` (``segment-profile-consents``)."""

from __future__ import annotations

import uuid

from crm_profile.events import CONSENT_CHANGED, CUSTOMER_CREATED, CUSTOMER_MERGED
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.consumers.profile_consents import SUBSCRIPTION, on_consent_changed
from crm_segment.consumers.profile_customers import on_profile_customer
from crm_segment.models import CustomerConsent
from tests.segment.conftest import at, envelope
from tests.segment.consumers.samples import consent, fresh, queued
from tests.segment.consumers.test_profile_customers import customer, merged

handle = on_consent_changed


async def consents(session, external_id: str) -> dict[str, tuple[str, str, object]]:
    """``channel -> (status, root, decided_at)`` of the customer's marketing consents."""
    rows = await fresh(
        session, CustomerConsent, CustomerConsent.customer_external_id == external_id
    )
    return {r.channel: (r.status, r.root_external_id, r.decided_at) for r in rows}


class TestSubscription:
    def test_durable(self):
        assert (SUBSCRIPTION.subject, SUBSCRIPTION.durable) == (
            "crm.profile.consent.changed",
            "segment-profile-consents",
        )
        assert SUBSCRIPTION in SUBSCRIPTIONS


class TestConsentChanged:
    async def test_keeps_the_decision_per_channel(self, session):
        await handle(session, envelope(CONSENT_CHANGED, consent("pk-1", "granted", at(1)), at(1)))
        sms = consent("pk-1", "denied", at(2), channel="sms")
        await handle(session, envelope(CONSENT_CHANGED, sms, at(2)))
        assert await consents(session, "pk-1") == {
            "email": ("granted", "pk-1", at(1)),
            "sms": ("denied", "pk-1", at(2)),
        }
        assert await queued(session) == {"pk-1": "input"}

    async def test_the_latest_decision_wins_whatever_the_order(self, session):
        newer = envelope(CONSENT_CHANGED, consent("pk-2", "denied", at(9)), at(9))
        older = envelope(CONSENT_CHANGED, consent("pk-2", "granted", at(3)), at(10))
        await handle(session, newer)
        await handle(session, older)
        await handle(session, newer)
        assert await consents(session, "pk-2") == {"email": ("denied", "pk-2", at(9))}

    async def test_counts_for_the_survivor(self, session):
        s, d = ("pk-3s", uuid.uuid4()), ("pk-3d", uuid.uuid4())
        await on_profile_customer(session, envelope(CUSTOMER_CREATED, customer(*s), at(0)))
        await on_profile_customer(session, envelope(CUSTOMER_MERGED, merged(s, d), at(1)))
        await handle(session, envelope(CONSENT_CHANGED, consent("pk-3d", "granted", at(2)), at(2)))
        assert await consents(session, "pk-3d") == {"email": ("granted", "pk-3s", at(2))}
