"""One trace from an HTTP request, through the outbox and NATS, to a consumer in another service."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import APIRouter
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from crm_common.app import create_service_app
from crm_common.db import SessionDep
from crm_common.events import Consumer, Outbox, OutboxRelay, Subscription
from crm_common.settings import ServiceSettings
from crm_common.testing import asgi_client
from tests.common.plumbing import (
    dead_letter_table,
    inbox_table,
    outbox_table,
    record_effect,
    sample_event,
)


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """Spans of this module, kept in memory (the global provider can be set once per process)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return memory


async def test_consumer_span_is_a_child_of_the_request_through_nats(
    exporter, crm_runtime, plumbing_db, js, token
):
    subject = f"crm.plumbing.{token}.happened"
    outbox = Outbox(outbox_table)
    router = APIRouter()

    @router.post("/v1/things", status_code=202)
    async def create_thing(session: SessionDep) -> dict[str, str]:
        await outbox.enqueue(session, sample_event(subject, "traced"))
        return {"status": "accepted"}

    settings = ServiceSettings(
        service_name="producer",
        database_url=crm_runtime.database_url,
        nats_url=crm_runtime.nats_url,
    )
    app = create_service_app(settings=settings, title="t", description="t", routers=[router])
    async with asgi_client(app) as client:
        assert (await client.post("/v1/things")).status_code == 202

    relay = OutboxRelay(plumbing_db, outbox_table, js, service="producer")
    while await relay.publish_batch():
        pass
    handled = asyncio.Event()

    async def handler(session, envelope):
        await record_effect(session, envelope)
        handled.set()

    sub = Subscription(subject=subject, durable=f"consumer-{token}", handler=handler)
    stop = asyncio.Event()
    task = asyncio.create_task(
        Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js).run(stop, fetch_timeout=0.2)
    )
    await asyncio.wait_for(handled.wait(), 10)
    stop.set()
    await task

    deadline = time.monotonic() + 5
    while True:
        spans = exporter.get_finished_spans()
        consumer = [
            s for s in spans if s.kind == SpanKind.CONSUMER and s.name == f"{subject} process"
        ]
        if consumer or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    server = next(
        s for s in spans if s.kind == SpanKind.SERVER and s.name.startswith("POST /v1/things")
    )
    producer = next(
        s for s in spans if s.kind == SpanKind.PRODUCER and s.name == f"{subject} publish"
    )
    assert len(consumer) == 1
    trace_id = server.context.trace_id
    assert producer.context.trace_id == trace_id == consumer[0].context.trace_id
    assert producer.parent is not None and producer.parent.span_id == server.context.span_id
    assert consumer[0].parent is not None and consumer[0].parent.span_id == producer.context.span_id
    assert consumer[0].attributes["messaging.consumer.group.name"] == sub.durable
    # The database work of the request is traced too (asyncpg instrumentation).
    assert any(
        s.context.trace_id == trace_id
        and s.kind == SpanKind.CLIENT
        and s.attributes.get("db.system") == "postgresql"
        for s in spans
    )


def test_setup_tracing_installs_an_otlp_provider(exporter: InMemorySpanExporter) -> None:
    """Asks for ``exporter`` so the module's global provider is already in place whatever the order."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from crm_common.settings import OtelSettings
    from crm_common.telemetry import setup_tracing

    settings = OtelSettings(
        otel_exporter_otlp_endpoint="http://127.0.0.1:4318/", otel_sample_ratio=0.5
    )
    provider = setup_tracing(settings, "plumbing")
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "crm-plumbing"
        assert "0.5" in provider.sampler.get_description()
        (processor,) = provider._active_span_processor._span_processors
        assert isinstance(processor, BatchSpanProcessor)
        span_exporter = processor.span_exporter
        assert isinstance(span_exporter, OTLPSpanExporter)
        assert span_exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    finally:
        provider.shutdown()
    assert setup_tracing(OtelSettings(otel_exporter_otlp_endpoint=None), "plumbing") is None
