"""Alembic environment of the profile schema (it touches no other schema)."""

from crm_common.migrations import run_env
from crm_profile.config import settings
from crm_profile.database import SCHEMA
from crm_profile.models import metadata

run_env(SCHEMA, metadata, settings.database_url)
