"""The segment service's settings: environment variables prefixed ``SEGMENT_``."""

from pydantic_settings import SettingsConfigDict

from crm_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the segment service (see the README for every variable)."""

    model_config = SettingsConfigDict(env_prefix="SEGMENT_", extra="ignore")

    service_name: str = "segment"
    api_port: int = 8002
    worker_metrics_port: int = 9102

    #: How often the worker takes due customers from the re-evaluation queue (seconds).
    evaluation_interval_seconds: float = 0.5
    #: How many due customers one evaluation transaction takes.
    evaluation_batch_size: int = 500
    #: Hours between full re-evaluations of every segment (the safety net); 0 = never.
    full_refresh_every_hours: float = 6.0
    #: How often the worker looks for queued batch jobs (seconds).
    jobs_poll_seconds: float = 2.0
    #: Hours between scheduled RFM recomputes; 0 = only on request.
    rfm_every_hours: float = 24.0
    #: Hours between scheduled BG/NBD + Gamma-Gamma refits; 0 = only on request.
    clv_fit_every_hours: float = 24.0


settings = Settings()
