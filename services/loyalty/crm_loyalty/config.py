"""The loyalty service's settings: environment variables prefixed ``LOYALTY_``."""

from pydantic_settings import SettingsConfigDict

from crm_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the loyalty service (see the README for every variable)."""

    model_config = SettingsConfigDict(env_prefix="LOYALTY_", extra="ignore")

    service_name: str = "loyalty"
    api_port: int = 8005
    worker_metrics_port: int = 9105


settings = Settings()
