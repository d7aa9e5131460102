"""crm_common.events.envelope: subjects, event types and CloudEvents binary-mode envelopes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import zstandard
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from crm_common.events import envelope as envelope_module
from crm_common.events.envelope import (
    COMPRESS_ABOVE,
    EVENT_TYPE_VERSION,
    SPECVERSION,
    Envelope,
    EnvelopeError,
    EventType,
    build_subject,
    is_packed,
    pack_body,
    unpack_body,
    validate_subject,
)

EVENT_ID = uuid.UUID("0b7e7a0e-2f5c-4d8e-9a1b-3c4d5e6f7a8b")
WHEN = datetime(2025, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class CustomerCreated(BaseModel):
    customer_id: uuid.UUID
    created_at: datetime
    tags: list[str] = []


CUSTOMER_CREATED = EventType(
    "crm.profile.customer.created", CustomerCreated, description="A customer was created."
)
CUSTOMER_CREATED_V2 = EventType("crm.profile.customer.created", CustomerCreated, version=2)


def headers(**overrides: str | None) -> dict[str, str]:
    base: dict[str, str | None] = {
        "ce-specversion": "1.0",
        "ce-id": str(EVENT_ID),
        "ce-source": "/crm/profile",
        "ce-type": "crm.profile.customer.created.v1",
        "ce-subject": "cust-1",
        "ce-time": WHEN.isoformat(),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


class TestValidateSubject:
    @pytest.mark.parametrize(
        "subject",
        [
            "crm.profile.customer.created",
            "crm.loyalty.points_balance.changed",
            "crm.loyalty.points.earned",
            "crm.loyalty.tier2.reached",
            "crm.notify.email.sent",
            "crm.segment.membership.left",
            "crm.recommend.model.built",
            "crm.profile.order.paid",
            "crm.notify.email.hard_bounced",
        ],
    )
    def test_valid(self, subject: str) -> None:
        assert validate_subject(subject) == subject

    @pytest.mark.parametrize(
        "subject",
        [
            "shop.profile.customer.created",
            "crm.profile.created",
            "crm.profile.customer.address.created",
            "crm.Profile.customer.created",
            "crm.profile.customer-account.created",
            "crm.profile.customer_.created",
            "crm.profile._customer.created",
            "crm.profile.2customer.created",
            "crm.profile.customer.created ",
            "crm.profile.customer.created\n",
            "crm.profile.customer.created\r\nPUB x 1",
            "crm.profile..created",
            "crm.profile.customer.>",
            "crm.profile.customer.*",
            "",
        ],
    )
    def test_malformed(self, subject: str) -> None:
        with pytest.raises(EnvelopeError, match=r"is not crm\.<service>\.<entity>\.<verb_past>"):
            validate_subject(subject)

    @pytest.mark.parametrize(
        "subject",
        ["crm.profile.customer.create", "crm.profile.customer.merge", "crm.notify.email.send"],
    )
    def test_verb_must_be_past_tense(self, subject: str) -> None:
        with pytest.raises(EnvelopeError, match="past-tense verb"):
            validate_subject(subject)

    def test_only_the_last_verb_token_counts(self) -> None:
        validate_subject("crm.profile.customer.send_completed")
        with pytest.raises(EnvelopeError, match="past-tense"):
            validate_subject("crm.profile.customer.completed_send")


class TestBuildSubject:
    def test_builds(self) -> None:
        assert build_subject("loyalty", "account", "opened") == "crm.loyalty.account.opened"

    def test_validates(self) -> None:
        with pytest.raises(EnvelopeError):
            build_subject("loyalty", "account", "open")


class TestEventType:
    def test_refuses_malformed_subject_at_declaration(self) -> None:
        with pytest.raises(EnvelopeError):
            EventType("crm.profile.customer.create", CustomerCreated)

    def test_attributes(self) -> None:
        assert CUSTOMER_CREATED.service == "profile"
        assert CUSTOMER_CREATED.version == 1
        assert CUSTOMER_CREATED.ce_type == "crm.profile.customer.created.v1"
        assert CUSTOMER_CREATED_V2.ce_type == "crm.profile.customer.created.v2"
        assert CUSTOMER_CREATED.description == "A customer was created."

    def test_envelope(self) -> None:
        payload = CustomerCreated(customer_id=EVENT_ID, created_at=WHEN, tags=["vip"])
        env = CUSTOMER_CREATED_V2.envelope(
            payload, subject_id="cust-1", event_id=EVENT_ID, time=WHEN
        )
        assert env == Envelope(
            subject="crm.profile.customer.created",
            type="crm.profile.customer.created.v2",
            source="/crm/profile",
            subject_id="cust-1",
            data={
                "customer_id": str(EVENT_ID),
                "created_at": "2025-05-17T08:30:15.123456Z",
                "tags": ["vip"],
            },
            id=EVENT_ID,
            time=WHEN,
        )
        assert env.version == 2

    def test_envelope_defaults(self) -> None:
        before = datetime.now(UTC)
        payload = CustomerCreated(customer_id=EVENT_ID, created_at=WHEN)
        first = CUSTOMER_CREATED.envelope(payload, subject_id="cust-1")
        second = CUSTOMER_CREATED.envelope(payload, subject_id="cust-1")
        assert first.id != second.id
        assert first.id.version == 4
        assert before <= first.time <= datetime.now(UTC)
        assert first.trace_headers == {}


class TestEnvelope:
    def make(self, **overrides: Any) -> Envelope:
        values: dict[str, Any] = {
            "subject": "crm.profile.customer.created",
            "type": "crm.profile.customer.created.v1",
            "source": "/crm/profile",
            "subject_id": "cust-1",
            "data": {"customer_id": "c1", "n": 1, "nested": {"a": [1, 2]}},
            "id": EVENT_ID,
            "time": WHEN,
        }
        values.update(overrides)
        return Envelope(**values)

    @pytest.mark.parametrize(
        ("ce_type", "version"),
        [
            ("crm.profile.customer.created.v1", 1),
            ("crm.profile.customer.created.v3", 3),
            ("crm.profile.customer.created.v12", 12),
            ("crm.profile.customer.created", 1),
            ("crm.profile.customer.created.v0", 1),
        ],
    )
    def test_version(self, ce_type: str, version: int) -> None:
        assert self.make(type=ce_type).version == version

    def test_type_version_pattern(self) -> None:
        match = EVENT_TYPE_VERSION.match("crm.a.b.created.v7")
        assert match is not None
        assert (match["subject"], match["version"]) == ("crm.a.b.created", "7")

    def test_body_is_the_payload_json(self) -> None:
        env = self.make()
        assert orjson.loads(env.body()) == env.data

    def test_headers(self) -> None:
        env = self.make(trace_headers={"traceparent": TRACEPARENT})
        assert env.headers() == {
            "Nats-Msg-Id": str(EVENT_ID),
            "ce-specversion": SPECVERSION,
            "ce-id": str(EVENT_ID),
            "ce-source": "/crm/profile",
            "ce-type": "crm.profile.customer.created.v1",
            "ce-subject": "cust-1",
            "ce-time": "2025-05-17T08:30:15.123456+00:00",
            "ce-datacontenttype": "application/json",
            "traceparent": TRACEPARENT,
        }
        assert SPECVERSION == "1.0"

    def test_round_trip(self) -> None:
        env = self.make(trace_headers={"traceparent": TRACEPARENT, "tracestate": "k=v"})
        assert Envelope.from_message(env.subject, env.headers(), env.body()) == env

    def test_defaults(self) -> None:
        env = Envelope(subject="s", type="t", source="/crm/x", subject_id="1", data={})
        assert isinstance(env.id, uuid.UUID)
        assert env.time.tzinfo is UTC
        assert env.trace_headers == {}


class TestEnvelopeFromMessage:
    def test_parses(self) -> None:
        env = Envelope.from_message(
            "crm.profile.customer.created",
            headers(traceparent=TRACEPARENT, **{"x-other": "dropped"}),
            b'{"customer_id": "c1"}',
        )
        assert env.id == EVENT_ID
        assert env.time == WHEN
        assert env.type == "crm.profile.customer.created.v1"
        assert env.source == "/crm/profile"
        assert env.subject_id == "cust-1"
        assert env.data == {"customer_id": "c1"}
        assert env.trace_headers == {"traceparent": TRACEPARENT}

    def test_optional_headers(self) -> None:
        before = datetime.now(UTC)
        env = Envelope.from_message("s", headers(**{"ce-time": None, "ce-subject": None}), b"")
        assert env.subject_id == ""
        assert env.data == {}
        assert before - timedelta(seconds=1) <= env.time <= datetime.now(UTC)

    @pytest.mark.parametrize(
        ("hdrs", "missing"),
        [
            (None, "ce-id, ce-type, ce-source, ce-specversion"),
            ({}, "ce-id, ce-type, ce-source, ce-specversion"),
            (headers(**{"ce-id": None}), "ce-id"),
            (headers(**{"ce-type": None, "ce-source": None}), "ce-type, ce-source"),
            (headers(**{"ce-specversion": None}), "ce-specversion"),
        ],
    )
    def test_missing_headers(self, hdrs: dict[str, str] | None, missing: str) -> None:
        with pytest.raises(EnvelopeError, match=f"missing headers: {missing}$"):
            Envelope.from_message("s", hdrs, b"{}")

    def test_unsupported_specversion(self) -> None:
        with pytest.raises(EnvelopeError, match="unsupported specversion '0.3'"):
            Envelope.from_message("s", headers(**{"ce-specversion": "0.3"}), b"{}")

    @pytest.mark.parametrize(
        ("hdrs", "body"),
        [
            (headers(**{"ce-id": "not-a-uuid"}), b"{}"),
            (headers(**{"ce-time": "yesterday"}), b"{}"),
            (headers(), b"{not json"),
            (headers(), b"\xff\xfe"),
        ],
    )
    def test_invalid_values(self, hdrs: dict[str, str], body: bytes) -> None:
        with pytest.raises(EnvelopeError):
            Envelope.from_message("s", hdrs, body)

    @pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
    def test_payload_must_be_an_object(self, body: bytes) -> None:
        with pytest.raises(EnvelopeError, match="payload must be a JSON object"):
            Envelope.from_message("s", headers(), body)


def large_body(size: int = 4 * COMPRESS_ABOVE) -> bytes:
    """A JSON object of about ``size`` bytes, as repetitive as a batch of interactions."""
    items = [{"event_id": f"ev-{i:08d}", "type": "page_view"} for i in range(size // 40)]
    return orjson.dumps({"interactions": items})


class TestPackedBodies:
    def test_a_small_body_stays_plain_json(self) -> None:
        body = b'{"x":"' + b"a" * (COMPRESS_ABOVE - 8) + b'"}'
        assert len(body) == COMPRESS_ABOVE
        assert pack_body(body) is body
        assert not is_packed(body)
        assert unpack_body(body) is body

    def test_a_large_body_is_one_zstd_frame_that_unpacks_to_it(self) -> None:
        body = large_body()
        packed = pack_body(body)
        assert is_packed(packed) and len(packed) < len(body) // 4
        assert unpack_body(packed) == body

    def test_a_damaged_frame_is_refused(self) -> None:
        packed = pack_body(large_body())
        with pytest.raises(EnvelopeError, match="does not decompress"):
            unpack_body(packed[:-40])

    def test_a_frame_unpacking_beyond_the_limit_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        packed = pack_body(large_body())
        monkeypatch.setattr(envelope_module, "_MAX_UNPACKED", COMPRESS_ABOVE)
        with pytest.raises(EnvelopeError, match="does not decompress"):
            unpack_body(packed)

    def test_a_frame_without_its_size_is_held_to_the_limit(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        body = large_body()
        packed = zstandard.ZstdCompressor(write_content_size=False).compress(body)
        assert unpack_body(packed) == body
        monkeypatch.setattr(envelope_module, "_MAX_UNPACKED", COMPRESS_ABOVE)
        with pytest.raises(EnvelopeError, match="does not decompress"):
            unpack_body(packed)

    def test_a_message_marked_zstd_is_unpacked(self) -> None:
        body = large_body()
        hdrs = {**headers(), "Content-Encoding": "zstd"}
        env = Envelope.from_message("s", hdrs, pack_body(body))
        assert env.data == orjson.loads(body)

    @pytest.mark.parametrize(("encoding", "packed"), [("gzip", True), ("zstd", False), ("", True)])
    def test_an_encoding_that_does_not_match_the_body_is_refused(
        self, encoding: str, packed: bool
    ) -> None:
        body = large_body()
        hdrs = {**headers(), "Content-Encoding": encoding}
        with pytest.raises(EnvelopeError, match="unsupported Content-Encoding"):
            Envelope.from_message("s", hdrs, pack_body(body) if packed else body)


class TestEnvelopeOverNats:
    async def test_round_trip_through_a_real_server(self, nats_client: NATS) -> None:
        payload = CustomerCreated(customer_id=EVENT_ID, created_at=WHEN, tags=["a", "b"])
        env = CUSTOMER_CREATED.envelope(payload, subject_id="cust-9")
        env.trace_headers = {"traceparent": TRACEPARENT}
        subject = f"test.envelope.{uuid.uuid4().hex}"
        sub = await nats_client.subscribe(subject)
        try:
            await nats_client.publish(subject, env.body(), headers=env.headers())
            msg = await asyncio.wait_for(sub.next_msg(), timeout=5)
        finally:
            await sub.unsubscribe()
        received = Envelope.from_message(env.subject, msg.headers, msg.data)
        assert received == env
        assert CustomerCreated.model_validate(received.data) == payload
