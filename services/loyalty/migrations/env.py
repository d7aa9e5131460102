"""Alembic environment of the loyalty schema (it touches no other schema)."""

from crm_common.migrations import run_env
from crm_loyalty.config import settings
from crm_loyalty.database import SCHEMA
from crm_loyalty.models import metadata

run_env(SCHEMA, metadata, settings.database_url)
