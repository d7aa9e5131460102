"""crm_common.http: outbound clients with explicit timeouts and trace propagation."""

from __future__ import annotations

import httpx
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from crm_common.http import create_http_client, timeouts
from crm_common.settings import HttpClientSettings

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


def settings() -> HttpClientSettings:
    return HttpClientSettings(
        http_connect_timeout=1.5,
        http_read_timeout=7.0,
        http_write_timeout=3.0,
        http_pool_timeout=0.5,
    )


def active_span() -> NonRecordingSpan:
    context = SpanContext(
        trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=False, trace_flags=TraceFlags(1)
    )
    return NonRecordingSpan(context)


class Recorder:
    """An ``httpx.MockTransport`` handler that keeps every request it is sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"ok": True})


class TestTimeouts:
    def test_each_timeout_from_settings(self) -> None:
        assert timeouts(settings()) == httpx.Timeout(connect=1.5, read=7.0, write=3.0, pool=0.5)

    def test_defaults(self) -> None:
        assert timeouts(HttpClientSettings()) == httpx.Timeout(
            connect=2.0, read=5.0, write=5.0, pool=2.0
        )


class TestCreateHttpClient:
    async def test_explicit_timeouts(self) -> None:
        async with create_http_client(settings()) as client:
            assert client.timeout == httpx.Timeout(connect=1.5, read=7.0, write=3.0, pool=0.5)

    async def test_bounded_pool(self) -> None:
        async with create_http_client(settings()) as client:
            pool = client._transport._pool  # type: ignore[attr-defined]
            assert pool._max_connections == 100
            assert pool._max_keepalive_connections == 20

    async def test_caller_limits_win(self) -> None:
        limits = httpx.Limits(max_connections=5, max_keepalive_connections=1)
        async with create_http_client(settings(), limits=limits) as client:
            assert client._transport._pool._max_connections == 5  # type: ignore[attr-defined]

    async def test_extra_arguments_pass_through(self) -> None:
        recorder = Recorder()
        async with create_http_client(
            settings(),
            transport=httpx.MockTransport(recorder),
            base_url="https://shop.example/api",
            headers={"User-Agent": "crm-test"},
        ) as client:
            response = await client.get("/orders")
        assert response.json() == {"ok": True}
        (request,) = recorder.requests
        assert str(request.url) == "https://shop.example/api/orders"
        assert request.headers["user-agent"] == "crm-test"

    async def test_traceparent_of_the_current_span(self) -> None:
        recorder = Recorder()
        async with create_http_client(
            settings(), transport=httpx.MockTransport(recorder)
        ) as client:
            with trace.use_span(active_span()):
                await client.get("https://shop.example/a")
            await client.get("https://shop.example/b")
        traced, untraced = recorder.requests
        version, trace_id, _span_id, flags = traced.headers["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", f"{TRACE_ID:032x}", "01")
        assert "traceparent" not in untraced.headers

    async def test_callers_traceparent_is_kept(self) -> None:
        recorder = Recorder()
        mine = "00-11111111111111111111111111111111-2222222222222222-01"
        async with create_http_client(
            settings(), transport=httpx.MockTransport(recorder)
        ) as client:
            with trace.use_span(active_span()):
                await client.get("https://shop.example/a", headers={"traceparent": mine})
        assert recorder.requests[0].headers["traceparent"] == mine

    async def test_callers_event_hooks_are_kept(self) -> None:
        recorder = Recorder()
        seen: list[str] = []

        async def on_request(request: httpx.Request) -> None:
            seen.append(f"request {request.url.path}")

        async def on_response(response: httpx.Response) -> None:
            seen.append(f"response {response.status_code}")

        async with create_http_client(
            settings(),
            transport=httpx.MockTransport(recorder),
            event_hooks={"request": [on_request], "response": [on_response]},
        ) as client:
            with trace.use_span(active_span()):
                await client.get("https://shop.example/hooked")
        assert seen == ["request /hooked", "response 200"]
        assert "traceparent" in recorder.requests[0].headers
