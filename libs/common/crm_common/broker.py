"""NATS connection, JetStream stream setup and drain on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from crm_common.settings import NatsSettings

__all__ = [
    "DAY",
    "close_nats",
    "connect_nats",
    "ensure_stream",
    "stream_config",
    "stream_name",
    "wait_for_stream",
]

logger = logging.getLogger("crm.broker")
DAY = 86_400


def stream_name(service: str) -> str:
    """The JetStream stream that holds a producing service's events: ``CRM_<SERVICE>``."""
    return f"CRM_{service.upper()}"


async def connect_nats(
    settings: NatsSettings, *, name: str | None = None, retry_for: float = 30.0
) -> NATS:
    """Connect with unlimited reconnects, retrying the first connection for up to ``retry_for`` seconds.

    With unlimited attempts the client retries a first connection forever without raising, so
    ``retry_for`` would never apply: the first connection gets one retry, this loop retries it
    until ``retry_for`` has passed, and reconnects become unlimited once connected.
    """
    deadline = time.monotonic() + retry_for
    while True:
        nc = NATS()
        try:
            await nc.connect(
                settings.nats_url,
                name=name or settings.service_name,
                connect_timeout=2,
                reconnect_time_wait=1,
                max_reconnect_attempts=1,
                allow_reconnect=True,
            )
        except (OSError, nats.errors.Error, TimeoutError):
            await nc.close()
            if time.monotonic() >= deadline:
                raise
            logger.warning(
                "NATS not reachable yet, retrying",
                extra={"nats_url_host": settings.nats_url.rsplit("@", 1)[-1]},
            )
            await asyncio.sleep(0.5)
            continue
        except asyncio.CancelledError:
            await nc.close()
            raise
        nc.options["max_reconnect_attempts"] = -1  # read by the client on every reconnect
        return nc


def stream_config(service: str, settings: NatsSettings) -> StreamConfig:
    """The producing service's stream: every ``crm.<service>.>`` subject, deduplicated by event id."""
    return StreamConfig(
        name=stream_name(service),
        subjects=[f"crm.{service}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=float(settings.stream_max_age_days * DAY),
        duplicate_window=float(settings.duplicate_window_seconds),
        num_replicas=settings.stream_replicas,
    )


async def ensure_stream(js: JetStreamContext, service: str, settings: NatsSettings) -> None:
    """Create the producer's stream, or bring an existing one to the configured policy."""
    config = stream_config(service, settings)
    try:
        await js.stream_info(config.name)  # type: ignore[arg-type]
    except NotFoundError:
        await js.add_stream(config)
        logger.info("stream created", extra={"stream": config.name})
        return
    await js.update_stream(config)


async def wait_for_stream(
    js: JetStreamContext, name: str, stop: asyncio.Event, *, interval: float = 1.0
) -> bool:
    """Wait until a producer has created stream ``name``; ``False`` if ``stop`` is set first."""
    warned = False
    while not stop.is_set():
        try:
            await js.stream_info(name)
            return True
        except NotFoundError:
            if not warned:
                logger.info("waiting for stream", extra={"stream": name})
                warned = True
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
    return False


async def close_nats(nc: NATS) -> None:
    """Drain (flush pending publishes and acks, unsubscribe) and close."""
    if nc.is_closed:
        return
    try:
        await nc.drain()
    except (
        nats.errors.ConnectionClosedError,
        nats.errors.ConnectionReconnectingError,
        nats.errors.FlushTimeoutError,
        TimeoutError,
    ):
        await nc.close()
