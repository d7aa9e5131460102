"""crm_common.logs, .metrics, .health and .app: JSON logs, Prometheus, probes, app assembly."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from starlette.types import Message, Receive, Scope, Send

from crm_common.app import create_service_app, run_api
from crm_common.auth import Authenticator, ConfigurationError, hash_api_key
from crm_common.db import Database
from crm_common.embedded import free_port
from crm_common.errors import NotFound
from crm_common.health import Health, health_router
from crm_common.logs import PERSONAL_FIELDS, ContextFilter, request_id_var, setup_logging
from crm_common.metrics import (
    CONSUMER_MESSAGES,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERIES,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    OUTBOX_BACKLOG,
    OUTBOX_PUBLISHED,
    RequestContextMiddleware,
    metrics_endpoint,
)
from crm_common.settings import ServiceSettings
from crm_common.testing import TestRuntime, asgi_client

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
log = logging.getLogger("crm.test.observability")


def service_name() -> str:
    return f"obs{uuid.uuid4().hex[:8]}"


def service_settings(crm_runtime: TestRuntime, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "service_name": service_name(),
        "database_url": crm_runtime.database_url,
        "nats_url": crm_runtime.nats_url,
    }
    values.update(overrides)
    return ServiceSettings(**values)


def closed_port_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{free_port()}" + ("/crm" if scheme == "postgresql" else "")


def active_span() -> NonRecordingSpan:
    return NonRecordingSpan(
        SpanContext(trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    )


def demo_router() -> APIRouter:
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        log.info("item read", extra={"item_id": item_id, "email": "ann@example.com"})
        if item_id == 404:
            raise NotFound("no such item")
        return {"id": item_id}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret-internals")

    return router


def demo_app(crm_runtime: TestRuntime, **overrides: Any) -> FastAPI:
    return create_service_app(
        settings=service_settings(crm_runtime, **overrides),
        title="Demo",
        description="Demo service",
        version="1.2.3",
        routers=[demo_router()],
    )


async def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


async def wait_nats(app: FastAPI) -> None:
    assert await wait_until(lambda: app.state.nats is not None and app.state.nats.is_connected)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    access = logging.getLogger("uvicorn.access")
    access_level = access.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_crm", False):
            root.removeHandler(handler)
    root.setLevel(level)
    access.setLevel(access_level)


@pytest.fixture
def logs(restore_logging: None) -> io.StringIO:
    buffer = io.StringIO()
    setup_logging("obs", stream=buffer)
    return buffer


# --------------------------------------------------------------------------- logs


class TestSetupLogging:
    def test_json_lines(self, logs: io.StringIO) -> None:
        log.info("hello %s", "world", extra={"order_id": 7})
        (line,) = json_lines(logs)
        assert line.pop("ts")
        assert line == {
            "level": "INFO",
            "logger": "crm.test.observability",
            "message": "hello world",
            "service": "obs",
            "request_id": None,
            "trace_id": None,
            "span_id": None,
            "order_id": 7,
        }

    def test_idempotent(self, restore_logging: None) -> None:
        first, second = io.StringIO(), io.StringIO()
        setup_logging("one", stream=first)
        handler = setup_logging("two", stream=second)
        crm_handlers = [h for h in logging.getLogger().handlers if getattr(h, "_crm", False)]
        assert crm_handlers == [handler]
        log.warning("once")
        assert first.getvalue() == ""
        assert [line["service"] for line in json_lines(second)] == ["two"]

    def test_level(self, restore_logging: None) -> None:
        buffer = io.StringIO()
        setup_logging("obs", "debug", stream=buffer)
        assert logging.getLogger().level == logging.DEBUG
        log.debug("details")
        assert [line["level"] for line in json_lines(buffer)] == ["DEBUG"]

    def test_info_hides_debug(self, logs: io.StringIO) -> None:
        log.debug("details")
        assert logs.getvalue() == ""

    def test_access_log_quietened(self, logs: io.StringIO) -> None:
        assert logging.getLogger("uvicorn.access").level == logging.WARNING

    def test_stderr_by_default(self, restore_logging: None) -> None:
        handler = setup_logging("obs")
        assert isinstance(handler, logging.StreamHandler)
        assert handler.stream is sys.stderr

    def test_exceptions(self, logs: io.StringIO) -> None:
        try:
            raise ValueError("bad value")
        except ValueError:
            log.exception("failed")
        (line,) = json_lines(logs)
        assert line["level"] == "ERROR"
        assert "ValueError: bad value" in line["exc_info"]

    def test_personal_fields_redacted(self, logs: io.StringIO) -> None:
        personal = {name: f"secret-{name}" for name in PERSONAL_FIELDS}
        log.info("customer", extra={**personal, "customer_id": "c-1"})
        (line,) = json_lines(logs)
        assert {name: line[name] for name in PERSONAL_FIELDS} == dict.fromkeys(
            PERSONAL_FIELDS, "[redacted]"
        )
        assert line["customer_id"] == "c-1"
        assert "secret-" not in logs.getvalue()

    def test_request_and_trace_ids(self, logs: io.StringIO) -> None:
        token = request_id_var.set("req-1")
        try:
            with trace.use_span(active_span()):
                log.info("inside")
        finally:
            request_id_var.reset(token)
        log.info("outside")
        inside, outside = json_lines(logs)
        assert (inside["request_id"], inside["trace_id"], inside["span_id"]) == (
            "req-1",
            f"{TRACE_ID:032x}",
            f"{SPAN_ID:016x}",
        )
        assert (outside["request_id"], outside["trace_id"], outside["span_id"]) == (
            None,
            None,
            None,
        )


class TestContextFilter:
    def record(self, **extra: Any) -> logging.LogRecord:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
        record.__dict__.update(extra)
        return record

    def test_never_drops(self) -> None:
        assert ContextFilter("svc").filter(self.record()) is True

    def test_enriches(self) -> None:
        record = self.record()
        token = request_id_var.set("r-9")
        try:
            ContextFilter("svc").filter(record)
        finally:
            request_id_var.reset(token)
        assert (record.service, record.request_id) == ("svc", "r-9")  # type: ignore[attr-defined]

    def test_scrubs(self) -> None:
        record = self.record(email="a@b.c", phone="+4912345", color_message="\x1b[1mmsg")
        ContextFilter("svc").filter(record)
        assert record.email == record.phone == "[redacted]"  # type: ignore[attr-defined]
        assert not hasattr(record, "color_message")
        assert not hasattr(record, "first_name")


class TestRequestLogs:
    async def test_request_and_trace_ids_in_handler_logs(
        self, crm_runtime: TestRuntime, logs: io.StringIO
    ) -> None:
        async with asgi_client(demo_app(crm_runtime)) as client:
            response = await client.get(
                "/items/5", headers={"X-Request-Id": "req-abc", "traceparent": TRACEPARENT}
            )
        assert response.status_code == 200
        (line,) = [x for x in json_lines(logs) if x["message"] == "item read"]
        assert line["request_id"] == "req-abc"
        assert line["trace_id"] == f"{TRACE_ID:032x}"
        assert len(line["span_id"]) == 16
        assert line["item_id"] == 5
        assert line["email"] == "[redacted]"
        assert "ann@example.com" not in logs.getvalue()

    async def test_unhandled_error_log_has_request_id(
        self, crm_runtime: TestRuntime, logs: io.StringIO
    ) -> None:
        async with asgi_client(demo_app(crm_runtime)) as client:
            response = await client.get("/boom", headers={"X-Request-Id": "req-500"})
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "req-500"
        (line,) = [x for x in json_lines(logs) if x["message"] == "unhandled error"]
        assert line["request_id"] == "req-500"
        assert line["error_type"] == "RuntimeError"
        assert line["level"] == "ERROR"
        assert request_id_var.get() is None


# --------------------------------------------------------------------------- metrics


def scrape(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class TestMetricsDeclarations:
    def test_names_and_labels(self) -> None:
        declared = {
            HTTP_REQUESTS: ("crm_http_requests", ("service", "method", "route", "status")),
            HTTP_LATENCY: ("crm_http_request_duration_seconds", ("service", "method", "route")),
            OUTBOX_BACKLOG: ("crm_outbox_backlog", ("service",)),
            OUTBOX_PUBLISHED: ("crm_outbox_published", ("service", "duplicate")),
            CONSUMER_MESSAGES: ("crm_consumer_messages", ("durable", "outcome")),
            CONSUMER_REDELIVERIES: ("crm_consumer_redeliveries", ("durable",)),
            CONSUMER_PENDING: ("crm_consumer_pending", ("durable",)),
        }
        for metric, (name, labels) in declared.items():
            assert metric._name == name  # type: ignore[attr-defined]
            assert metric._labelnames == labels  # type: ignore[attr-defined]


class TestMetricsEndpoint:
    async def test_requests_by_route_template(self, crm_runtime: TestRuntime) -> None:
        app = demo_app(crm_runtime)
        svc = app.state.settings.service_name
        async with asgi_client(app) as client:
            for item_id in (1, 2, 404):
                await client.get(f"/items/{item_id}")
            await client.get("/no/such/path")
            await client.get("/boom")
            response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"] == CONTENT_TYPE_LATEST
        samples = scrape(response.text)

        def count(route: str, status: str, method: str = "GET") -> float:
            labels = {"service": svc, "method": method, "route": route, "status": status}
            return samples.get(("crm_http_requests_total", tuple(sorted(labels.items()))), 0.0)

        assert count("/items/{item_id}", "200") == 2
        assert count("/items/{item_id}", "404") == 1
        assert count("unmatched", "404") == 1
        assert count("/boom", "500") == 1
        routes = {dict(k[1]).get("route") for k in samples if dict(k[1]).get("service") == svc}
        assert not any(r and r.startswith("/items/") and r != "/items/{item_id}" for r in routes)
        assert "/no/such/path" not in routes
        latency = ("service", svc), ("method", "GET"), ("route", "/items/{item_id}")
        assert samples[("crm_http_request_duration_seconds_count", tuple(sorted(latency)))] == 3

    async def test_not_in_openapi(self, crm_runtime: TestRuntime) -> None:
        assert "/metrics" not in demo_app(crm_runtime).openapi()["paths"]

    async def test_direct(self) -> None:
        from starlette.requests import Request

        response = await metrics_endpoint(Request({"type": "http", "method": "GET"}))
        assert response.media_type == CONTENT_TYPE_LATEST
        assert b"crm_http_requests_total" in bytes(response.body)


class TestRequestContextMiddleware:
    async def test_request_id_echoed(self, crm_runtime: TestRuntime) -> None:
        async with asgi_client(demo_app(crm_runtime)) as client:
            response = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"

    @pytest.mark.parametrize("incoming", [None, "", "x" * 129])
    async def test_request_id_generated(
        self, crm_runtime: TestRuntime, incoming: str | None
    ) -> None:
        headers = {} if incoming is None else {"X-Request-Id": incoming}
        async with asgi_client(demo_app(crm_runtime)) as client:
            first = await client.get("/healthz", headers=headers)
            second = await client.get("/healthz", headers=headers)
        generated = first.headers["x-request-id"]
        assert len(generated) == 32
        int(generated, 16)
        assert second.headers["x-request-id"] != generated

    async def test_longest_request_id_kept(self, crm_runtime: TestRuntime) -> None:
        async with asgi_client(demo_app(crm_runtime)) as client:
            response = await client.get("/healthz", headers={"X-Request-Id": "y" * 128})
        assert response.headers["x-request-id"] == "y" * 128

    async def test_problem_responses_carry_request_id(self, crm_runtime: TestRuntime) -> None:
        async with asgi_client(demo_app(crm_runtime)) as client:
            not_found = await client.get("/items/404", headers={"X-Request-Id": "r404"})
            crashed = await client.get("/boom", headers={"X-Request-Id": "r500"})
        assert not_found.headers["x-request-id"] == "r404"
        assert crashed.headers["x-request-id"] == "r500"
        assert "secret-internals" not in crashed.text

    async def test_other_scopes_pass_through(self) -> None:
        seen: list[str] = []

        async def inner(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope["type"])
            assert request_id_var.get() is None

        async def receive() -> Message:  # pragma: no cover - never awaited
            return {}

        async def send(message: Message) -> None:  # pragma: no cover - never awaited
            pass

        middleware = RequestContextMiddleware(inner, service="passthrough")
        await middleware({"type": "lifespan"}, receive, send)
        await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
        assert seen == ["lifespan", "websocket"]
        assert sample("crm_http_requests_total", service="passthrough") == 0

    async def test_app_failing_before_response(self) -> None:
        svc = service_name()

        async def inner(scope: Scope, receive: Receive, send: Send) -> None:
            assert request_id_var.get() == "req-x"
            raise RuntimeError("before any response")

        async def receive() -> Message:  # pragma: no cover - never awaited
            return {"type": "http.request"}

        async def send(message: Message) -> None:  # pragma: no cover - never awaited
            raise AssertionError("nothing is sent")

        scope = {"type": "http", "method": "POST", "headers": [(b"x-request-id", b"req-x")]}
        with pytest.raises(RuntimeError, match="before any response"):
            await RequestContextMiddleware(inner, service=svc)(scope, receive, send)
        labels = {"service": svc, "method": "POST", "route": "unmatched"}
        assert sample("crm_http_requests_total", **labels, status="500") == 1
        assert sample("crm_http_request_duration_seconds_count", **labels) == 1
        assert request_id_var.get() is None


# --------------------------------------------------------------------------- health


class TestHealthz:
    async def test_alive(self, crm_runtime: TestRuntime) -> None:
        async with asgi_client(demo_app(crm_runtime, nats_url=closed_port_url("nats"))) as client:
            response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "checks": {}}


class TestReadyz:
    async def test_ready(self, crm_runtime: TestRuntime) -> None:
        app = demo_app(crm_runtime)
        async with asgi_client(app) as client:
            await wait_nats(app)
            response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "checks": {"database": "ok", "nats": "ok"}}

    async def test_database_unreachable(
        self, crm_runtime: TestRuntime, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = demo_app(crm_runtime, database_url=closed_port_url("postgresql"))
        async with asgi_client(app) as client:
            await wait_nats(app)
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "checks": {"database": "unreachable", "nats": "ok"},
        }
        assert "readiness: database unreachable" in caplog.messages

    async def test_nats_unreachable(self, crm_runtime: TestRuntime) -> None:
        app = demo_app(crm_runtime, nats_url=closed_port_url("nats"))
        async with asgi_client(app) as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "nats": "unreachable"},
        }

    async def test_nats_connection_lost(self, crm_runtime: TestRuntime) -> None:
        app = demo_app(crm_runtime)
        async with asgi_client(app) as client:
            await wait_nats(app)
            await app.state.nats.close()
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "ok", "nats": "unreachable"}

    async def test_both_unreachable(self, crm_runtime: TestRuntime) -> None:
        app = demo_app(
            crm_runtime,
            database_url=closed_port_url("postgresql"),
            nats_url=closed_port_url("nats"),
        )
        async with asgi_client(app) as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "unreachable", "nats": "unreachable"}

    def test_documented(self, crm_runtime: TestRuntime) -> None:
        schema = demo_app(crm_runtime).openapi()
        responses = schema["paths"]["/readyz"]["get"]["responses"]
        assert responses["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/Health")
        assert schema["paths"]["/healthz"]["get"]["summary"] == "Liveness"

    async def test_router_on_a_bare_app(self, database: Database) -> None:
        app = FastAPI()
        app.state.database = database
        app.include_router(health_router())
        async with asgi_client(app) as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert Health.model_validate(response.json()).checks == {
            "database": "ok",
            "nats": "unreachable",
        }


# --------------------------------------------------------------------------- app


async def backends(database: Database, application_name: str) -> int:
    async with database.engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
            {"n": application_name},
        )
    return int(count or 0)


class TestCreateServiceApp:
    def test_assembly(self, crm_runtime: TestRuntime) -> None:
        app = demo_app(crm_runtime)
        assert (app.title, app.description, app.version) == ("Demo", "Demo service", "1.2.3")
        assert isinstance(app.state.authenticator, Authenticator)
        assert app.state.settings.service_name.startswith("obs")
        paths = app.openapi()["paths"]
        assert {"/healthz", "/readyz", "/items/{item_id}", "/boom"} <= paths.keys()

    def test_production_without_api_keys_refused(self, crm_runtime: TestRuntime) -> None:
        with pytest.raises(ConfigurationError, match="no API keys configured"):
            demo_app(crm_runtime, environment="production", jwt_secret="x" * 40)

    def test_production_with_dev_jwt_secret_refused(self, crm_runtime: TestRuntime) -> None:
        keys = [{"name": "shop", "sha256": hash_api_key("k"), "scopes": ["profile:read"]}]
        with pytest.raises(ConfigurationError, match="CRM_JWT_SECRET"):
            demo_app(crm_runtime, environment="production", api_keys=keys)

    def test_production_with_safe_settings(self, crm_runtime: TestRuntime) -> None:
        keys = [{"name": "shop", "sha256": hash_api_key("k"), "scopes": ["profile:read"]}]
        app = demo_app(crm_runtime, environment="production", api_keys=keys, jwt_secret=None)
        assert app.state.authenticator.api_key("k").name == "shop"
        assert app.state.authenticator.api_key("dev-admin-key") is None

    async def test_owned_database_disposed_and_nats_closed(
        self, crm_runtime: TestRuntime, database: Database
    ) -> None:
        app = demo_app(crm_runtime)
        name = f"{app.state.settings.service_name}-api"
        async with asgi_client(app) as client:
            await wait_nats(app)
            assert (await client.get("/readyz")).status_code == 200
            assert await backends(database, name) == 1
            nc = app.state.nats
        assert nc.is_closed
        assert await wait_until_async(lambda: backends(database, name), 0)

    async def test_given_database_left_open(
        self, crm_runtime: TestRuntime, database: Database
    ) -> None:
        settings = service_settings(crm_runtime)
        name = f"given-{settings.service_name}"
        given = Database.from_settings(settings, application_name=name)
        app = create_service_app(settings=settings, title="t", description="d", database=given)
        try:
            async with asgi_client(app) as client:
                assert app.state.database is given
                await client.get("/readyz")
            assert await backends(database, name) == 1
        finally:
            await given.dispose()

    async def test_nats_connection_retried_in_background(
        self, crm_runtime: TestRuntime, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = demo_app(crm_runtime, nats_url="nats://127.0.0.1:not-a-port")
        async with asgi_client(app) as client:
            assert await wait_until(lambda: "NATS connection failed, retrying" in caplog.messages)
            response = await client.get("/readyz")
        assert response.json()["checks"]["nats"] == "unreachable"
        assert app.state.nats is None


async def wait_until_async(probe: Any, expected: Any, timeout: float = 5.0) -> bool:
    for _ in range(int(timeout / 0.02)):
        if await probe() == expected:
            return True
        await asyncio.sleep(0.02)
    return bool(await probe() == expected)


class TestRunApi:
    def test_serves_with_json_logs(
        self,
        crm_runtime: TestRuntime,
        restore_logging: None,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """uvicorn starts the app (here, one whose start-up fails) with JSON logs on stderr."""

        @asynccontextmanager
        async def failing(app: FastAPI) -> AsyncIterator[None]:
            raise RuntimeError("start-up failed on purpose")
            yield  # pragma: no cover

        app = FastAPI(lifespan=failing)
        settings = service_settings(crm_runtime, api_port=free_port(), log_level="warning")
        outcome: list[BaseException] = []

        def serve() -> None:
            try:
                run_api(app, settings)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive()
        assert isinstance(outcome[0], SystemExit)
        assert logging.getLogger().level == logging.WARNING
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
        assert lines, "no JSON log lines on stderr"
        assert all(line["service"] == settings.service_name for line in lines)
        assert any(line["logger"].startswith("uvicorn") for line in lines)
