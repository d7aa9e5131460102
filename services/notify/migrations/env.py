"""Alembic environment of the notify schema (it touches no other schema)."""

from crm_common.migrations import run_env
from crm_notify.config import settings
from crm_notify.database import SCHEMA
from crm_notify.models import metadata

run_env(SCHEMA, metadata, settings.database_url)
