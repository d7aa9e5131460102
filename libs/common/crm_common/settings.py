"""Settings mixins every service composes into its own ``Settings`` class.

Only classes live here; each service instantiates its settings in its own ``config.py``.
``DATABASE_URL`` and ``NATS_URL`` without a prefix are honoured by every service; a prefixed
variable (``LOYALTY_DATABASE_URL``) wins over it for one service.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "UNPREFIXED",
    "AuthSettings",
    "BaseServiceSettings",
    "DatabaseSettings",
    "HttpClientSettings",
    "NatsSettings",
    "OtelSettings",
    "ServiceSettings",
    "UnprefixedEnvSource",
    "normalise_database_url",
]

#: Unprefixed variables honoured by every service, and the field each one feeds.
UNPREFIXED = {
    "database_url": "DATABASE_URL",
    "nats_url": "NATS_URL",
    "environment": "CRM_ENV",
    "admin_api_key": "CRM_ADMIN_API_KEY",
    "api_keys": "CRM_API_KEYS",
    "jwt_secret": "CRM_JWT_SECRET",
    "jwt_issuer": "CRM_JWT_ISSUER",
    "jwt_audience": "CRM_JWT_AUDIENCE",
    "jwt_public_keys": "CRM_JWT_PUBLIC_KEYS",
    "otel_exporter_otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "log_level": "CRM_LOG_LEVEL",
}


def normalise_database_url(url: str) -> str:
    """Return ``url`` with the asyncpg driver, whatever PostgreSQL scheme it was given with."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("must be a postgresql:// URL")


class UnprefixedEnvSource(PydanticBaseSettingsSource):
    """Reads the suite-wide unprefixed variables (``DATABASE_URL``, ``NATS_URL``, ``CRM_*``).

    It sits below the prefixed environment, so ``PROFILE_DATABASE_URL`` overrides
    ``DATABASE_URL`` for the profile service only.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Return the unprefixed variable's value for ``field_name``, if it has one."""
        env_name = UNPREFIXED.get(field_name)
        value = os.environ.get(env_name) if env_name else None
        return value, field_name, self.field_is_complex(field) and value is not None

    def __call__(self) -> dict[str, Any]:
        """Collect every unprefixed value that is set, decoding complex ones from JSON."""
        data: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, is_complex = self.get_field_value(field, name)
            if value is not None:
                data[key] = self.decode_complex_value(key, field, value) if is_complex else value
        return data


class BaseServiceSettings(BaseSettings):
    """Common fields: environment, service name and logging; adds the unprefixed source."""

    model_config = SettingsConfigDict(extra="ignore", env_nested_delimiter="__")

    service_name: str = "crm"
    environment: Literal["local", "test", "production"] = "local"
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Prefixed environment first, then the suite-wide unprefixed variables."""
        return (
            init_settings,
            env_settings,
            UnprefixedEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )


class DatabaseSettings(BaseServiceSettings):
    """PostgreSQL connection and pool."""

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/crm"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_echo: bool = False

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        """Accept plain ``postgresql://`` URLs and use the asyncpg driver."""
        return normalise_database_url(value)


class NatsSettings(BaseServiceSettings):
    """NATS JetStream connection and the producing stream's policy."""

    nats_url: str = "nats://127.0.0.1:54222"
    stream_replicas: int = Field(default=1, ge=1, le=5)
    stream_max_age_days: int = Field(default=7, ge=1)
    duplicate_window_seconds: int = Field(default=600, ge=1)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_seconds: float = Field(default=0.2, gt=0)
    outbox_busy_poll_interval_seconds: float = Field(default=0.02, gt=0)


class OtelSettings(BaseServiceSettings):
    """Tracing: off unless an OTLP endpoint is configured."""

    otel_exporter_otlp_endpoint: str | None = None
    otel_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class HttpClientSettings(BaseServiceSettings):
    """Outbound HTTP timeouts (seconds); every client has explicit ones."""

    http_connect_timeout: float = Field(default=2.0, gt=0)
    http_read_timeout: float = Field(default=5.0, gt=0)
    http_write_timeout: float = Field(default=5.0, gt=0)
    http_pool_timeout: float = Field(default=2.0, gt=0)


class AuthSettings(BaseServiceSettings):
    """Service API keys (hashed) and the customer JWT verification keys."""

    #: JSON list of ``{"name", "sha256", "scopes"}``; several keys may share scopes (rotation).
    api_keys: list[dict[str, Any]] = Field(default_factory=list)
    #: Plain admin key honoured only outside production (local runs and tests).
    admin_api_key: str | None = "dev-admin-key"
    jwt_secret: str | None = "dev-jwt-secret"
    jwt_public_keys: list[str] = Field(default_factory=list)
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256", "RS256", "ES256"])
    jwt_issuer: str = "shop"
    jwt_audience: str = "crm"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=600)


class ServiceSettings(
    DatabaseSettings, NatsSettings, OtelSettings, HttpClientSettings, AuthSettings
):
    """Everything a service process needs; each service subclasses it with its own prefix."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    #: Port of the worker's Prometheus endpoint (0 disables it).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
