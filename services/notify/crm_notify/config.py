"""The notify service's settings: environment variables prefixed ``NOTIFY_``."""

from pydantic_settings import SettingsConfigDict

from crm_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the notify service (see the README for every variable)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore")

    service_name: str = "notify"
    api_port: int = 8004
    worker_metrics_port: int = 9104


settings = Settings()
