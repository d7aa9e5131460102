"""The recommend service's settings: environment variables prefixed ``RECOMMEND_``."""

from pydantic_settings import SettingsConfigDict

from crm_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the recommend service (see the README for every variable)."""

    model_config = SettingsConfigDict(env_prefix="RECOMMEND_", extra="ignore")

    service_name: str = "recommend"
    api_port: int = 8003
    worker_metrics_port: int = 9103


settings = Settings()
