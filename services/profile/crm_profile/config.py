"""The profile service's settings: environment variables prefixed ``PROFILE_``."""

import re

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from crm_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the profile service (see the README for every variable)."""

    model_config = SettingsConfigDict(env_prefix="PROFILE_", extra="ignore")

    service_name: str = "profile"
    api_port: int = 8001
    worker_metrics_port: int = 9101

    #: Region assumed for phone numbers sent without a country code (ISO 3166-1, e.g. "DE").
    default_phone_region: str | None = None
    #: Largest ``attributes`` object accepted, in bytes of JSON.
    max_attributes_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    #: Behaviour events older than this are refused.
    event_horizon_days: int = Field(default=30, ge=1, le=3650)
    #: Behaviour events stamped further in the future than this are refused.
    event_clock_skew_seconds: int = Field(default=300, ge=0, le=86_400)
    #: Merge automatically when a new or updated customer has the same normalised email.
    auto_merge_email: bool = False
    #: Merge automatically when a new or updated customer has the same E.164 phone.
    auto_merge_phone: bool = False
    #: Services that contribute a part to every GDPR export (each answers on crm.<svc>.export.contributed).
    export_parts: list[str] = Field(default_factory=lambda: ["segment"])
    #: An export still missing parts this long after it was requested is reported as overdue.
    export_overdue_seconds: int = Field(default=900, ge=1, le=30 * 86_400)

    @field_validator("export_parts")
    @classmethod
    def _part_names(cls, value: list[str]) -> list[str]:
        """Each part is a service name (a subject token), listed once, never ``profile``."""
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*", name) or name == "profile":
                raise ValueError(f"{name!r} is not the name of another service")
        if len(set(value)) != len(value):
            raise ValueError("a service is listed twice")
        return value


settings = Settings()
