"""Request and response models of ``/v1/me``."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from crm_profile.customers.schemas import Birthday, Locale, Name, Timezone


class MeRead(BaseModel):
    """What a customer sees of their own profile (the full record is in an export)."""

    model_config = ConfigDict(from_attributes=True)

    external_id: str
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    birthday: date | None
    locale: str | None
    timezone: str | None
    country: str | None
    city: str | None


class MePatch(BaseModel):
    """Fields a customer may change; contact details and the rest belong to the shop."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: Name | None = None
    last_name: Name | None = None
    birthday: Birthday | None = None
    locale: Locale | None = None
    timezone: Timezone | None = None
    city: Annotated[str, Field(min_length=1, max_length=100)] | None = None
