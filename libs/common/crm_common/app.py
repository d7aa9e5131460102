"""Assembles a service's FastAPI app the same way for every service.

Each service's ``app.py`` calls :func:`create_service_app` with its settings and routers; this
module owns the lifespan (database, NATS, authentication), error handlers, request metrics,
tracing and probes, so none of that is written five times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import uvicorn
from fastapi import APIRouter, FastAPI

from crm_common.auth import Authenticator
from crm_common.broker import close_nats, connect_nats
from crm_common.db import Database
from crm_common.errors import install_error_handlers
from crm_common.health import health_router
from crm_common.logs import setup_logging
from crm_common.metrics import RequestContextMiddleware, metrics_endpoint
from crm_common.settings import ServiceSettings
from crm_common.telemetry import instrument_libraries, setup_tracing

__all__ = ["create_service_app", "run_api"]

logger = logging.getLogger("crm.app")


async def _connect_in_background(app: FastAPI, settings: ServiceSettings) -> None:
    """Connect to NATS without blocking start-up; ``/readyz`` stays 503 until connected."""
    while True:
        try:
            app.state.nats = await connect_nats(
                settings, name=f"{settings.service_name}-api", retry_for=3600
            )
            return
        except Exception:
            logger.warning("NATS connection failed, retrying", exc_info=True)
            await asyncio.sleep(2)


def create_service_app(
    *,
    settings: ServiceSettings,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    version: str = "0.1.0",
    database: Database | None = None,
) -> FastAPI:
    """Build the service's app; raises ``ConfigurationError`` when auth settings are unsafe."""
    authenticator = Authenticator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database.from_settings(
            settings, application_name=f"{settings.service_name}-api"
        )
        app.state.nats = None
        connector = asyncio.create_task(_connect_in_background(app, settings))
        try:
            yield
        finally:
            # Python 3.11's wait_for (inside the NATS client) can swallow a cancellation that
            # races with a failed connection attempt, so cancel until the task has ended.
            while not connector.done():
                connector.cancel()
                await asyncio.wait({connector}, timeout=0.1)
            if app.state.nats is not None:
                await close_nats(app.state.nats)
            if owned:
                await app.state.database.dispose()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.database = database
    install_error_handlers(app)
    app.include_router(health_router())
    app.add_api_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    instrument_libraries()
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    # Outermost, around Starlette's ServerErrorMiddleware: a 500 from an unhandled exception
    # also carries X-Request-Id, and its "unhandled error" log line the request id.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestContextMiddleware(  # type: ignore[method-assign]
        build_stack(), service=settings.service_name
    )
    return app


def run_api(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` with uvicorn, JSON logs and graceful shutdown on SIGTERM."""
    setup_logging(settings.service_name, settings.log_level)
    setup_tracing(settings, settings.service_name)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        proxy_headers=True,
    )
