"""The segment service's settings: environment variables prefixed ``SEGMENT_``."""

from pydantic_settings import SettingsConfigDict

from crm_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the segment service (see the README for every variable)."""

    model_config = SettingsConfigDict(env_prefix="SEGMENT_", extra="ignore")

    service_name: str = "segment"
    api_port: int = 8002
    worker_metrics_port: int = 9102


settings = Settings()
