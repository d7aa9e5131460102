"""Alembic environment of the segment schema (it touches no other schema)."""

from crm_common.migrations import run_env
from crm_segment.config import settings
from crm_segment.database import SCHEMA
from crm_segment.models import metadata

run_env(SCHEMA, metadata, settings.database_url)
