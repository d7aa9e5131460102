"""The profile service's settings: environment variables prefixed ``PROFILE_``."""

from pydantic_settings import SettingsConfigDict

from crm_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the profile service (see the README for every variable)."""

    model_config = SettingsConfigDict(env_prefix="PROFILE_", extra="ignore")

    service_name: str = "profile"
    api_port: int = 8001
    worker_metrics_port: int = 9101


settings = Settings()
