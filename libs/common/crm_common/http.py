"""Outbound HTTP: an ``httpx.AsyncClient`` factory with explicit timeouts and trace propagation."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry import propagate

from crm_common.settings import HttpClientSettings

__all__ = ["create_http_client", "timeouts"]


def timeouts(settings: HttpClientSettings) -> httpx.Timeout:
    """The four httpx timeouts from settings (httpx's default is a single 5 s)."""
    return httpx.Timeout(
        connect=settings.http_connect_timeout,
        read=settings.http_read_timeout,
        write=settings.http_write_timeout,
        pool=settings.http_pool_timeout,
    )


async def _inject_trace(request: httpx.Request) -> None:
    """Add ``traceparent`` of the current span to an outgoing request."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for key, value in carrier.items():
        request.headers.setdefault(key, value)


def create_http_client(settings: HttpClientSettings, **kwargs: Any) -> httpx.AsyncClient:
    """A client with explicit timeouts, bounded pool and ``traceparent`` on every request."""
    hooks = kwargs.pop("event_hooks", {})
    hooks.setdefault("request", []).append(_inject_trace)
    kwargs.setdefault("limits", httpx.Limits(max_connections=100, max_keepalive_connections=20))
    return httpx.AsyncClient(timeout=timeouts(settings), event_hooks=hooks, **kwargs)
