"""CloudEvents 1.0 binary-mode envelope carried in NATS headers, and subject rules.

The body of a message is only the JSON payload; the CloudEvents attributes travel as ``ce-*``
headers, with ``Nats-Msg-Id`` = ``ce-id`` so JetStream drops a re-published duplicate and
``traceparent`` so a consumer's span joins the producer's trace. A payload over
``COMPRESS_ABOVE`` bytes is stored in the outbox and sent as one zstd frame, marked
``Content-Encoding: zstd``; :meth:`Envelope.from_message` undoes it (docs/events.md).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
import zstandard
from pydantic import BaseModel

__all__ = [
    "COMPRESS_ABOVE",
    "CONTENT_ENCODING",
    "EVENT_TYPE_VERSION",
    "SPECVERSION",
    "Envelope",
    "EnvelopeError",
    "EventType",
    "build_subject",
    "is_packed",
    "pack_body",
    "unpack_body",
    "validate_subject",
]

P = TypeVar("P", bound=BaseModel)

SPECVERSION = "1.0"
#: Payloads larger than this (bytes of JSON) are compressed: a batch of 1,000 interactions is
#: ~180 KiB of JSON and ~37 KiB compressed, which the outbox's WAL, the relay and JetStream's
#: storage all carry five times less of (bench/README.md). Small events stay plain JSON.
COMPRESS_ABOVE = 16 * 1024
#: The header naming the body's encoding, and its one value.
CONTENT_ENCODING = ("Content-Encoding", "zstd")
#: The first bytes of a zstd frame; a JSON payload (an object) starts with ``{``.
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Largest decompressed body accepted: NATS carries at most 1 MiB, JSON compresses ~5 times.
_MAX_UNPACKED = 64 * 1024 * 1024
_COMPRESS = zstandard.ZstdCompressor(level=1).compress
_DECOMPRESSOR = zstandard.ZstdDecompressor()
EVENT_TYPE_VERSION = re.compile(r"^(?P<subject>.+)\.v(?P<version>[1-9][0-9]*)$")
_TOKEN = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
_SUBJECT = re.compile(rf"^crm\.(?P<service>{_TOKEN})\.(?P<entity>{_TOKEN})\.(?P<verb>{_TOKEN})$")
#: Past-tense verbs end in -ed, or are one of English's irregular past participles used here.
_IRREGULAR_PAST = frozenset(
    {
        "sent",
        "won",
        "lost",
        "paid",
        "made",
        "set",
        "held",
        "spent",
        "built",
        "begun",
        "done",
        "taken",
        "given",
        "read",
        "shown",
        "bought",
        "sold",
        "run",
        "hit",
        "left",
        "undone",
    }
)


class EnvelopeError(ValueError):
    """A message whose headers or body do not form a valid envelope."""


def validate_subject(subject: str) -> str:
    """Check ``crm.<service>.<entity>.<verb_past>`` (lowercase snake_case tokens, past-tense verb)."""
    match = _SUBJECT.fullmatch(subject)  # not .match: "$" also matches before a final "\n"
    if match is None:
        raise EnvelopeError(f"subject {subject!r} is not crm.<service>.<entity>.<verb_past>")
    verb = match["verb"].rsplit("_", 1)[-1]
    if not (verb.endswith("ed") or verb in _IRREGULAR_PAST):
        raise EnvelopeError(f"subject {subject!r} must end in a past-tense verb")
    return subject


def build_subject(service: str, entity: str, verb: str) -> str:
    """Assemble and validate a subject."""
    return validate_subject(f"crm.{service}.{entity}.{verb}")


@dataclass(frozen=True)
class EventType(Generic[P]):
    """A declared event: its subject, version and the producer's payload model."""

    subject: str
    payload: type[P]
    version: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        """Refuse a malformed subject at import time."""
        validate_subject(self.subject)

    @property
    def service(self) -> str:
        """The producing service (second subject token)."""
        return self.subject.split(".")[1]

    @property
    def ce_type(self) -> str:
        """CloudEvents ``type``: the subject plus ``.vN``."""
        return f"{self.subject}.v{self.version}"

    def envelope(
        self,
        payload: P,
        *,
        subject_id: str,
        event_id: uuid.UUID | None = None,
        time: datetime | None = None,
    ) -> Envelope:
        """Wrap ``payload`` for publishing; ``subject_id`` is the aggregate's id (``ce-subject``)."""
        return Envelope(
            subject=self.subject,
            type=self.ce_type,
            source=f"/crm/{self.service}",
            subject_id=subject_id,
            data=payload.model_dump(mode="json"),
            id=event_id or uuid.uuid4(),
            time=time or datetime.now(UTC),
        )


def pack_body(body: bytes) -> bytes:
    """``body`` as stored and sent: a zstd frame when over ``COMPRESS_ABOVE`` bytes."""
    return _COMPRESS(body) if len(body) > COMPRESS_ABOVE else body


def is_packed(body: bytes) -> bool:
    """Whether ``body`` is a zstd frame (made by :func:`pack_body`), not plain JSON."""
    return body[:4] == _ZSTD_MAGIC


def unpack_body(body: bytes) -> bytes:
    """The JSON of a stored or received body, whether :func:`pack_body` compressed it or not.

    Raises :class:`EnvelopeError` for a frame that does not decompress within 64 MiB.
    """
    if not is_packed(body):
        return body
    try:
        # A frame names its size (ours do) or not; the limit applies either way.
        if zstandard.frame_content_size(body) > _MAX_UNPACKED:
            raise zstandard.ZstdError(f"it would exceed {_MAX_UNPACKED} bytes")
        return _DECOMPRESSOR.decompress(body, max_output_size=_MAX_UNPACKED)
    except zstandard.ZstdError as exc:
        raise EnvelopeError(f"body does not decompress: {exc}") from exc


@dataclass
class Envelope:
    """One event: CloudEvents attributes plus the JSON payload."""

    subject: str
    type: str
    source: str
    subject_id: str
    data: dict[str, Any]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    trace_headers: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> int:
        """The ``N`` of the type's ``.vN`` suffix."""
        match = EVENT_TYPE_VERSION.match(self.type)
        return int(match["version"]) if match else 1

    def body(self) -> bytes:
        """The message body: the payload as JSON."""
        return orjson.dumps(self.data)

    def headers(self) -> dict[str, str]:
        """CloudEvents binary-mode headers plus ``Nats-Msg-Id`` and trace context."""
        return {
            "Nats-Msg-Id": str(self.id),
            "ce-specversion": SPECVERSION,
            "ce-id": str(self.id),
            "ce-source": self.source,
            "ce-type": self.type,
            "ce-subject": self.subject_id,
            "ce-time": self.time.isoformat(),
            "ce-datacontenttype": "application/json",
            **self.trace_headers,
        }

    @classmethod
    def from_message(cls, subject: str, headers: Mapping[str, str] | None, body: bytes) -> Envelope:
        """Parse a received NATS message; raises :class:`EnvelopeError` when it is not one of ours."""
        h = dict(headers or {})
        encoding = h.get(CONTENT_ENCODING[0])
        if encoding is not None and (encoding != CONTENT_ENCODING[1] or not is_packed(body)):
            raise EnvelopeError(f"unsupported {CONTENT_ENCODING[0]} {encoding!r}")
        # A frame without the header too: no JSON starts with its magic number, and a relay of
        # an earlier release publishes rows this one compressed without marking them.
        body = unpack_body(body)
        missing = [k for k in ("ce-id", "ce-type", "ce-source", "ce-specversion") if k not in h]
        if missing:
            raise EnvelopeError(f"missing headers: {', '.join(missing)}")
        if h["ce-specversion"] != SPECVERSION:
            raise EnvelopeError(f"unsupported specversion {h['ce-specversion']!r}")
        try:
            event_id = uuid.UUID(h["ce-id"])
            time = datetime.fromisoformat(h["ce-time"]) if "ce-time" in h else datetime.now(UTC)
            data = orjson.loads(body) if body else {}
        except ValueError as exc:
            raise EnvelopeError(str(exc)) from exc
        if not isinstance(data, dict):
            raise EnvelopeError("payload must be a JSON object")
        trace = {k: v for k, v in h.items() if k in ("traceparent", "tracestate")}
        return cls(
            subject=subject,
            type=h["ce-type"],
            source=h["ce-source"],
            subject_id=h.get("ce-subject", ""),
            data=data,
            id=event_id,
            time=time,
            trace_headers=trace,
        )
