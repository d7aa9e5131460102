"""The consent service functions other domains reuse (merge, and later notify)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_profile.consents import service
from crm_profile.consents.service import Decision
from tests.profile.conftest import published, put_customer
from tests.profile.timeline.factories import customer_row, merge

NOW = datetime.now(UTC)


class TestRecordDecision:
    async def test_returns_the_effective_state_and_publishes_once(self, client, session):
        await put_customer(client, "sv-1")
        customer = await customer_row(session, "sv-1")
        first = Decision("email", "marketing", "granted", "import", NOW - timedelta(days=3))
        state = await service.record_decision(session, customer, first)
        assert (state.status, state.source) == ("granted", "import")
        older = Decision("email", "marketing", "denied", "import", NOW - timedelta(days=9))
        state = await service.record_decision(session, customer, older)
        assert state.status == "granted"
        assert len(await published(session, "crm.profile.consent.changed")) == 1

    async def test_a_merged_duplicate_resolves_its_survivor(self, client, session):
        await put_customer(client, "sv-2")
        await put_customer(client, "sv-2-dup")
        await merge(session, "sv-2", "sv-2-dup")
        duplicate = await customer_row(session, "sv-2-dup")
        decision = Decision("sms", "transactional", "denied", "support", NOW)
        await service.record_decision(session, duplicate, decision)
        [event] = await published(session, "crm.profile.consent.changed")
        assert event["customer_external_id"] == "sv-2"


class TestEffectiveConsents:
    async def test_every_pair_for_the_group(self, client, session):
        await put_customer(client, "sv-3")
        customer = await customer_row(session, "sv-3")
        decision = Decision("push", "marketing", "granted", "app", NOW)
        await service.record_decision(session, customer, decision)
        states = await service.effective_consents(session, customer)
        assert len(states) == 8
        assert {(s.channel, s.purpose) for s in states if s.status == "granted"} == {
            ("push", "marketing")
        }
        assert all(s.decided_at is None for s in states if s.status == "unknown")
