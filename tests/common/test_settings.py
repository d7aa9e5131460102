"""crm_common.settings: the mixins, the unprefixed variables and their precedence."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from crm_common.settings import (
    UNPREFIXED,
    AuthSettings,
    BaseServiceSettings,
    DatabaseSettings,
    HttpClientSettings,
    NatsSettings,
    OtelSettings,
    ServiceSettings,
    UnprefixedEnvSource,
    normalise_database_url,
)

PG = "postgresql+asyncpg://u:p@db.example:5432/crm"


class PrefixedSettings(ServiceSettings):
    """A service's settings, as each service declares them."""

    model_config = SettingsConfigDict(env_prefix="TESTSVC_", extra="ignore")

    service_name: str = "testsvc"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No suite-wide variable leaks in from the session (conftest and plugin set some)."""
    for name in UNPREFIXED.values():
        monkeypatch.delenv(name, raising=False)
    for field in ServiceSettings.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
        monkeypatch.delenv(f"TESTSVC_{field.upper()}", raising=False)
    return monkeypatch


class TestNormaliseDatabaseUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "postgresql+asyncpg://u:p@db.example:5432/crm",
            "postgresql://u:p@db.example:5432/crm",
            "postgres://u:p@db.example:5432/crm",
        ],
    )
    def test_postgres_schemes_use_asyncpg(self, url: str) -> None:
        assert normalise_database_url(url) == PG

    @pytest.mark.parametrize(
        "url", ["mysql://u@h/db", "sqlite:///crm.db", "db.example:5432/crm", ""]
    )
    def test_other_schemes_refused(self, url: str) -> None:
        with pytest.raises(ValueError, match=r"must be a postgresql:// URL"):
            normalise_database_url(url)


class TestBaseServiceSettings:
    def test_defaults(self) -> None:
        settings = BaseServiceSettings()
        assert settings.service_name == "crm"
        assert settings.environment == "local"
        assert settings.log_level == "INFO"

    def test_unknown_environment_refused(self) -> None:
        with pytest.raises(ValidationError, match="environment"):
            BaseServiceSettings(environment="staging")

    def test_unknown_keys_ignored(self) -> None:
        settings = BaseServiceSettings(not_a_setting="x")  # type: ignore[call-arg]
        assert not hasattr(settings, "not_a_setting")

    def test_crm_env_sets_environment(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("CRM_ENV", "production")
        assert BaseServiceSettings().environment == "production"

    def test_crm_log_level(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("CRM_LOG_LEVEL", "DEBUG")
        assert BaseServiceSettings().log_level == "DEBUG"


class TestUnprefixedEnvSource:
    def test_unprefixed_variables_feed_every_service(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("DATABASE_URL", "postgres://shared@db/crm")
        clean_env.setenv("NATS_URL", "nats://shared:4222")
        clean_env.setenv("CRM_JWT_SECRET", "s3cret")
        clean_env.setenv("CRM_JWT_ISSUER", "shop-eu")
        clean_env.setenv("CRM_JWT_AUDIENCE", "crm-eu")
        clean_env.setenv("CRM_ADMIN_API_KEY", "admin-key")
        clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
        settings = PrefixedSettings()
        assert settings.database_url == "postgresql+asyncpg://shared@db/crm"
        assert settings.nats_url == "nats://shared:4222"
        assert settings.jwt_secret == "s3cret"
        assert settings.jwt_issuer == "shop-eu"
        assert settings.jwt_audience == "crm-eu"
        assert settings.admin_api_key == "admin-key"
        assert settings.otel_exporter_otlp_endpoint == "http://collector:4318"

    def test_prefixed_variable_wins(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("DATABASE_URL", "postgresql://shared@db/crm")
        clean_env.setenv("TESTSVC_DATABASE_URL", "postgresql://mine@db/testsvc")
        clean_env.setenv("NATS_URL", "nats://shared:4222")
        settings = PrefixedSettings()
        assert settings.database_url == "postgresql+asyncpg://mine@db/testsvc"
        assert settings.nats_url == "nats://shared:4222"

    def test_init_arguments_win_over_environment(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("DATABASE_URL", "postgresql://shared@db/crm")
        clean_env.setenv("TESTSVC_DATABASE_URL", "postgresql://mine@db/testsvc")
        settings = PrefixedSettings(database_url="postgresql://init@db/x")
        assert settings.database_url == "postgresql+asyncpg://init@db/x"

    def test_json_lists_are_decoded(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv(
            "CRM_API_KEYS", '[{"name": "shop", "sha256": "ab", "scopes": ["profile:read"]}]'
        )
        clean_env.setenv("CRM_JWT_PUBLIC_KEYS", '["-----BEGIN PUBLIC KEY-----"]')
        settings = PrefixedSettings()
        assert settings.api_keys == [{"name": "shop", "sha256": "ab", "scopes": ["profile:read"]}]
        assert settings.jwt_public_keys == ["-----BEGIN PUBLIC KEY-----"]

    def test_prefixed_json_list_wins(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("CRM_API_KEYS", '[{"sha256": "ab", "scopes": []}]')
        clean_env.setenv("TESTSVC_API_KEYS", '[{"sha256": "cd", "scopes": []}]')
        assert PrefixedSettings().api_keys == [{"sha256": "cd", "scopes": []}]

    def test_malformed_json_refused(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("CRM_API_KEYS", "not json")
        with pytest.raises(ValueError, match="Expecting value"):
            PrefixedSettings()

    def test_nothing_set_gives_defaults(self) -> None:
        settings = PrefixedSettings()
        assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:55432/crm"
        assert settings.nats_url == "nats://127.0.0.1:54222"
        assert settings.api_keys == []
        assert settings.otel_exporter_otlp_endpoint is None

    def test_source_reads_only_mapped_fields(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("DATABASE_URL", "postgresql://shared@db/crm")
        clean_env.setenv("CRM_API_KEYS", "[]")
        clean_env.setenv("DB_POOL_SIZE", "3")  # not a suite-wide variable
        data = UnprefixedEnvSource(PrefixedSettings)()
        assert data == {"database_url": "postgresql://shared@db/crm", "api_keys": []}

    def test_get_field_value(self, clean_env: pytest.MonkeyPatch) -> None:
        source = UnprefixedEnvSource(PrefixedSettings)
        fields = PrefixedSettings.model_fields
        assert source.get_field_value(fields["api_keys"], "api_keys") == (None, "api_keys", False)
        assert source.get_field_value(fields["db_echo"], "db_echo") == (None, "db_echo", False)
        clean_env.setenv("CRM_API_KEYS", "[]")
        clean_env.setenv("NATS_URL", "nats://n:4222")
        assert source.get_field_value(fields["api_keys"], "api_keys") == ("[]", "api_keys", True)
        assert source.get_field_value(fields["nats_url"], "nats_url") == (
            "nats://n:4222",
            "nats_url",
            False,
        )


class TestDatabaseSettings:
    def test_plain_url_gets_asyncpg_driver(self) -> None:
        assert DatabaseSettings(database_url="postgres://u@h/db").database_url == (
            "postgresql+asyncpg://u@h/db"
        )

    def test_non_postgres_url_refused(self) -> None:
        with pytest.raises(ValidationError, match="must be a postgresql:// URL"):
            DatabaseSettings(database_url="mysql://u@h/db")

    @pytest.mark.parametrize(
        ("field", "value"),
        [("db_pool_size", 0), ("db_pool_size", 201), ("db_max_overflow", -1)],
    )
    def test_pool_bounds(self, field: str, value: int) -> None:
        with pytest.raises(ValidationError, match=field):
            DatabaseSettings(**{field: value})

    def test_defaults(self) -> None:
        settings = DatabaseSettings()
        assert (settings.db_pool_size, settings.db_max_overflow, settings.db_echo) == (
            10,
            10,
            False,
        )


class TestNatsSettings:
    def test_defaults(self) -> None:
        settings = NatsSettings()
        assert settings.stream_replicas == 1
        assert settings.stream_max_age_days == 7
        assert settings.duplicate_window_seconds == 600
        assert settings.outbox_batch_size == 500
        assert settings.outbox_poll_interval_seconds == 0.2
        assert settings.outbox_busy_poll_interval_seconds == 0.02

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("stream_replicas", 0),
            ("stream_replicas", 6),
            ("stream_max_age_days", 0),
            ("duplicate_window_seconds", 0),
            ("outbox_batch_size", 10_001),
            ("outbox_poll_interval_seconds", 0),
            ("outbox_busy_poll_interval_seconds", 0),
        ],
    )
    def test_bounds(self, field: str, value: float) -> None:
        with pytest.raises(ValidationError, match=field):
            NatsSettings(**{field: value})

    def test_env_is_read(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("TESTSVC_STREAM_REPLICAS", "3")
        assert PrefixedSettings().stream_replicas == 3


class TestOtelSettings:
    def test_tracing_off_by_default(self) -> None:
        settings = OtelSettings()
        assert settings.otel_exporter_otlp_endpoint is None
        assert settings.otel_sample_ratio == 1.0

    @pytest.mark.parametrize("ratio", [-0.1, 1.1])
    def test_sample_ratio_bounds(self, ratio: float) -> None:
        with pytest.raises(ValidationError, match="otel_sample_ratio"):
            OtelSettings(otel_sample_ratio=ratio)


class TestHttpClientSettings:
    def test_defaults(self) -> None:
        settings = HttpClientSettings()
        assert (
            settings.http_connect_timeout,
            settings.http_read_timeout,
            settings.http_write_timeout,
            settings.http_pool_timeout,
        ) == (2.0, 5.0, 5.0, 2.0)

    @pytest.mark.parametrize(
        "field",
        ["http_connect_timeout", "http_read_timeout", "http_write_timeout", "http_pool_timeout"],
    )
    def test_timeouts_must_be_positive(self, field: str) -> None:
        with pytest.raises(ValidationError, match=field):
            HttpClientSettings(**{field: 0})


class TestAuthSettings:
    def test_local_defaults(self) -> None:
        settings = AuthSettings()
        assert settings.api_keys == []
        assert settings.admin_api_key == "dev-admin-key"
        assert settings.jwt_secret == "dev-jwt-secret"
        assert settings.jwt_public_keys == []
        assert settings.jwt_algorithms == ["HS256", "RS256", "ES256"]
        assert (settings.jwt_issuer, settings.jwt_audience) == ("shop", "crm")
        assert settings.jwt_leeway_seconds == 30

    def test_defaults_are_not_shared(self) -> None:
        first, second = AuthSettings(), AuthSettings()
        first.jwt_algorithms.append("HS512")
        assert second.jwt_algorithms == ["HS256", "RS256", "ES256"]

    @pytest.mark.parametrize("leeway", [-1, 601])
    def test_leeway_bounds(self, leeway: int) -> None:
        with pytest.raises(ValidationError, match="jwt_leeway_seconds"):
            AuthSettings(jwt_leeway_seconds=leeway)

    def test_secrets_can_be_unset(self) -> None:
        settings = AuthSettings(admin_api_key=None, jwt_secret=None)
        assert settings.admin_api_key is None
        assert settings.jwt_secret is None


class TestServiceSettings:
    def test_composes_every_mixin(self) -> None:
        assert issubclass(ServiceSettings, DatabaseSettings)
        assert issubclass(ServiceSettings, NatsSettings)
        assert issubclass(ServiceSettings, OtelSettings)
        assert issubclass(ServiceSettings, HttpClientSettings)
        assert issubclass(ServiceSettings, AuthSettings)
        settings = ServiceSettings(
            service_name="t", database_url="postgres://u@h/d", nats_url="nats://h:1"
        )
        assert settings.service_name == "t"
        assert settings.database_url == "postgresql+asyncpg://u@h/d"
        assert settings.nats_url == "nats://h:1"
        assert (settings.api_host, settings.api_port, settings.worker_metrics_port) == (
            "127.0.0.1",
            8000,
            0,
        )

    @pytest.mark.parametrize(
        ("field", "value"),
        [("api_port", 0), ("api_port", 65536), ("worker_metrics_port", -1)],
    )
    def test_port_bounds(self, field: str, value: int) -> None:
        with pytest.raises(ValidationError, match=field):
            ServiceSettings(**{field: value})

    def test_prefixed_environment(self, clean_env: pytest.MonkeyPatch) -> None:
        clean_env.setenv("TESTSVC_API_PORT", "8123")
        clean_env.setenv("TESTSVC_SERVICE_NAME", "renamed")
        settings = PrefixedSettings()
        assert (settings.api_port, settings.service_name) == (8123, "renamed")
