"""OpenTelemetry tracing: OTLP export when configured, and trace context through NATS headers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind

from crm_common.settings import OtelSettings

__all__ = [
    "consumer_span",
    "current_trace_headers",
    "instrument_libraries",
    "producer_span",
    "setup_tracing",
    "tracer",
]

_instrumented = False


def tracer() -> trace.Tracer:
    """The suite's tracer (resolved lazily so a provider set later is honoured)."""
    return trace.get_tracer("crm")


def setup_tracing(settings: OtelSettings, service_name: str) -> TracerProvider | None:
    """Install an OTLP-exporting provider when an endpoint is configured; tracing is off otherwise."""
    if not settings.otel_exporter_otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(
        resource=Resource.create({"service.name": f"crm-{service_name}"}),
        sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)),
    )
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def instrument_libraries() -> None:
    """Trace asyncpg queries and httpx calls (no-op spans until a provider is installed)."""
    global _instrumented
    if _instrumented:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().instrument()
    _instrumented = True


def current_trace_headers() -> dict[str, str]:
    """W3C ``traceparent``/``tracestate`` of the current span (empty when not tracing)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


@contextmanager
def producer_span(
    subject: str, parent_headers: Mapping[str, str], headers: dict[str, str]
) -> Iterator[Span]:
    """A PRODUCER span, child of the context stored with the outbox row; injects itself into ``headers``."""
    parent = propagate.extract(dict(parent_headers))
    with tracer().start_as_current_span(
        f"{subject} publish",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": subject,
            "messaging.operation.type": "publish",
        },
    ) as span:
        propagate.inject(headers)
        yield span


@contextmanager
def consumer_span(subject: str, durable: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """A CONSUMER span whose parent is the producer span carried in the message headers."""
    parent = propagate.extract(dict(headers))
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(
            f"{subject} process",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": subject,
                "messaging.consumer.group.name": durable,
                "messaging.operation.type": "process",
            },
        ) as span:
            yield span
    finally:
        otel_context.detach(token)
