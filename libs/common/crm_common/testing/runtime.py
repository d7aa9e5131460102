"""The servers a test session runs against: embedded ones, or those named by the environment."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import get_session
from crm_common.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from crm_common.migrations import upgrade
from crm_common.settings import normalise_database_url

__all__ = ["TestRuntime", "asgi_client", "mint_customer_token"]


def _plain(url: str) -> str:
    """asyncpg wants ``postgresql://`` without the SQLAlchemy driver suffix."""
    return normalise_database_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass
class TestRuntime:
    """PostgreSQL and NATS for one test session, with a fresh database holding every migration."""

    __test__ = False  # a helper, not a test class

    service_dirs: Sequence[Path]
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="crm-test-")))
    postgres: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    database_url: str = ""
    nats_url: str = ""
    admin_url: str = ""
    db_name: str = ""

    def start(self) -> None:
        """Start (or attach to) the servers, create the session's database and migrate it."""
        external_db = os.environ.get("DATABASE_URL")
        if external_db:
            self.admin_url = normalise_database_url(external_db)
        else:
            self.postgres = EmbeddedPostgres(self.workdir / "pg", free_port())
            self.admin_url = self.postgres.start()
        external_nats = os.environ.get("NATS_URL")
        if external_nats:
            self.nats_url = external_nats
        else:
            self.nats = EmbeddedNats(self.workdir / "nats", free_port())
            self.nats_url = self.nats.start()
        self.db_name = f"crm_test_{uuid.uuid4().hex[:10]}"
        asyncio.run(self._create_database())
        base, _, _ = self.admin_url.rpartition("/")
        self.database_url = f"{base}/{self.db_name}"
        # Exported before migrating: a service's env.py imports its settings, which read these.
        os.environ["DATABASE_URL"] = self.database_url
        os.environ["NATS_URL"] = self.nats_url
        for service_dir in self.service_dirs:
            upgrade(service_dir, self.database_url)
        if external_nats:
            asyncio.run(self._reset_streams())

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(_plain(self.admin_url))
        try:
            await conn.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await conn.close()

    async def _reset_streams(self) -> None:
        """On a shared NATS, start from empty CRM streams (subjects may not overlap two streams)."""
        import nats

        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            for info in await js.streams_info():
                if info.config.name and info.config.name.startswith("CRM_"):
                    await js.delete_stream(info.config.name)
        finally:
            await nc.close()

    def stop(self) -> None:
        """Drop the session database (external server) and stop embedded servers."""
        if self.postgres is None and self.db_name:
            asyncio.run(self._drop_database())
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()
            # As root the data may live under /var/tmp behind a symlink (see crm_common.embedded),
            # which removing the workdir alone would leave behind.
            shutil.rmtree(self.postgres.data_dir.resolve(), ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def _drop_database(self) -> None:
        conn = await asyncpg.connect(_plain(self.admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            await conn.close()


@asynccontextmanager
async def asgi_client(
    app: FastAPI, *, session: AsyncSession | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``app`` with its lifespan running; requests may share ``session``.

    With ``session`` (the rolled-back test session) every request works inside the test's
    outer transaction, so nothing a test writes through the API outlives it.
    """
    if session is not None:

        async def shared() -> AsyncIterator[AsyncSession]:
            yield session
            await session.flush()

        app.dependency_overrides[get_session] = shared
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport, base_url="http://testserver", headers=headers
            ) as client,
        ):
            yield client
    finally:
        app.dependency_overrides.pop(get_session, None)


def mint_customer_token(
    external_id: str,
    *,
    secret: str = "dev-jwt-secret",
    issuer: str = "shop",
    audience: str = "crm",
    ttl: int = 600,
    **claims: Any,
) -> str:
    """An HS256 customer JWT as a shop's backend would sign it."""
    now = int(time.time())
    payload = {
        "sub": external_id,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl,
        **claims,
    }
    with warnings.catch_warnings():  # the local default secret is shorter than PyJWT likes
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(payload, secret, algorithm="HS256")
