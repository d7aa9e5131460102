"""Request and response models of the customers API."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from crm_profile.config import settings
from crm_profile.customers.normalise import (
    check_country,
    check_locale,
    check_timezone,
    normalise_email,
    normalise_phone,
)

SourceChannel = Literal["web", "app", "store", "mini_program", "marketplace"]
Gender = Literal["female", "male", "non_binary", "other", "unspecified"]
ExternalId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@\-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=100)]


def _email(value: str) -> str:
    return normalise_email(value)


def _phone(value: str) -> str:
    return normalise_phone(value, settings.default_phone_region)


def _birthday(value: date) -> date:
    if value > date.today() or value.year < 1900:
        raise ValueError("must be a past date after 1900")
    return value


def _past(value: datetime) -> datetime:
    if value > datetime.now(UTC):
        raise ValueError("must not be in the future")
    return value


#: The numbers events can carry: orjson, which encodes them, stops at 64-bit integers.
MIN_NUMBER = -(2**63)
MAX_NUMBER = 2**64 - 1


def _bad_number(value: Any, path: str) -> str | None:
    """Why a number in ``value`` cannot be stored and announced (with where it is), or ``None``.

    PostgreSQL keeps JSON numbers as exact decimals and prints them without an exponent, so a
    float such as ``1e20`` reads back as the integer ``100000000000000000000``, which the
    ``crm.profile.customer.*`` events could not encode; ``NaN`` and infinities are not JSON at
    all (orjson writes them as ``null``, the database refuses them). Integers beyond 64 bits
    are refused before, by orjson itself.
    """
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            stack += [(v, f"{where}.{k}") for k, v in item.items()]
        elif isinstance(item, list):
            stack += [(v, f"{where}[{i}]") for i, v in enumerate(item)]
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{where[:100]} is {item}; numbers must be finite"
        elif isinstance(item, float) and not MIN_NUMBER <= item <= MAX_NUMBER:
            return f"{where[:100]} is {item:g}; numbers must lie between -2^63 and 2^64 - 1"
    return None


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # e.g. integers beyond 64 bits
        raise ValueError(f"attributes must be plain JSON: {exc}") from exc
    if b"\\u0000" in encoded:
        raise ValueError("attributes may not contain NUL characters")
    size = len(encoded)
    if size > settings.max_attributes_bytes:
        raise ValueError(
            f"attributes are {size} bytes of JSON; the limit is {settings.max_attributes_bytes}"
        )
    if any(len(k) > 64 for k in value):
        raise ValueError("attribute names are at most 64 characters")
    if (problem := _bad_number(value, "attributes")) is not None:
        raise ValueError(problem)
    return value


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=32), AfterValidator(_phone)]
Birthday = Annotated[date, AfterValidator(_birthday)]
PastTime = Annotated[AwareDatetime, AfterValidator(_past)]
Timezone = Annotated[str, AfterValidator(check_timezone)]
Locale = Annotated[str, Field(max_length=35), AfterValidator(check_locale)]
Country = Annotated[str, Field(min_length=2, max_length=2), AfterValidator(check_country)]
Attributes = Annotated[dict[str, Any], AfterValidator(_attributes)]

#: Profile fields a shop's backend may set (also the fields of ``crm.profile.customer.*``).
PROFILE_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "birthday",
    "gender",
    "timezone",
    "locale",
    "country",
    "city",
    "registered_at",
    "source_channel",
    "attributes",
)


class CustomerFields(BaseModel):
    """Fields of a customer; every one optional, unknown ones refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: Email | None = None
    phone: Phone | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    birthday: Birthday | None = None
    gender: Gender | None = None
    timezone: Timezone | None = None
    locale: Locale | None = None
    country: Country | None = None
    city: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    registered_at: PastTime | None = None
    source_channel: SourceChannel | None = None
    attributes: Attributes | None = None


class CustomerPut(CustomerFields):
    """``PUT``: the full representation; fields left out are cleared."""


class CustomerPatch(CustomerFields):
    """``PATCH``: only the fields sent change (``null`` clears one)."""


class TagRead(BaseModel):
    """A tag with where it came from."""

    tag: str
    origin: Literal["manual", "segment"]


class CustomerRead(BaseModel):
    """A customer as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    external_id: str
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    birthday: date | None
    gender: str | None
    timezone: str | None
    locale: str | None
    country: str | None
    city: str | None
    registered_at: datetime | None
    source_channel: str | None
    attributes: dict[str, Any]
    status: str
    tags: list[TagRead] = []
    merged_external_ids: list[str] = Field(
        default=[], description="Duplicates merged into this customer"
    )
    created_at: datetime
    updated_at: datetime

    @field_validator("attributes", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value if value is not None else {}


class CustomerPage(BaseModel):
    """A page of customers."""

    items: list[CustomerRead]
    next_cursor: str | None
