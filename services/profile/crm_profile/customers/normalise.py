"""Normalisation and validation of contact and profile fields."""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email

LOCALE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Z][a-z]{3})?(?:[-_](?:[A-Z]{2}|[0-9]{3}))?$")


def normalise_email(value: str) -> str:
    """Trimmed, syntax-checked, lower-cased address; raises ``ValueError`` when invalid."""
    candidate = value.strip()
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc
    return result.normalized.lower()


def normalise_phone(value: str, default_region: str | None) -> str:
    """E.164 form (``+14155550123``); numbers without a country code use ``default_region``."""
    try:
        number = phonenumbers.parse(value.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if default_region else " (include the country code, e.g. +44...)"
        raise ValueError(f"not a valid phone number{hint}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(value: str) -> str:
    """An IANA time zone name such as ``Europe/Berlin``."""
    if value not in _timezones():
        raise ValueError("not an IANA time zone name (e.g. Europe/Berlin)")
    return value


def check_locale(value: str) -> str:
    """A BCP 47 language tag such as ``en``, ``de-DE`` or ``zh-Hans-CN`` (``_`` becomes ``-``)."""
    if not LOCALE.match(value):
        raise ValueError("not a locale tag (e.g. en, de-DE, zh-Hans-CN)")
    return value.replace("_", "-")


def check_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 country code (upper case)."""
    code = value.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError("not an ISO 3166-1 alpha-2 country code")
    return code
