"""Prometheus metrics: HTTP requests by route, outbox backlog, consumer lag and redeliveries."""

from __future__ import annotations

import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_common.logs import request_id_var

__all__ = [
    "CONSUMER_MESSAGES",
    "CONSUMER_PENDING",
    "CONSUMER_REDELIVERIES",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "OUTBOX_BACKLOG",
    "OUTBOX_PUBLISHED",
    "RequestContextMiddleware",
    "metrics_endpoint",
]

HTTP_REQUESTS = Counter(
    "crm_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "crm_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("crm_outbox_backlog", "Outbox rows waiting to be published", ["service"])
OUTBOX_PUBLISHED = Counter(
    "crm_outbox_published_total", "Events published by the outbox relay", ["service", "duplicate"]
)
CONSUMER_MESSAGES = Counter(
    "crm_consumer_messages_total", "Messages handled by consumers", ["durable", "outcome"]
)
CONSUMER_REDELIVERIES = Counter(
    "crm_consumer_redeliveries_total", "Messages received more than once", ["durable"]
)
CONSUMER_PENDING = Gauge(
    "crm_consumer_pending", "Messages not yet delivered or not yet acked (lag)", ["durable"]
)


class RequestContextMiddleware:
    """Pure ASGI middleware: request id (``X-Request-Id``), request count and latency by route."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        """Wrap ``app``; ``service`` labels the metrics."""
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and label it with its route template (not the raw path)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 128 else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, template).observe(time.perf_counter() - start)
            request_id_var.reset(token)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
