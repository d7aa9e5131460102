"""Alembic environment of the recommend schema (it touches no other schema)."""

from crm_common.migrations import run_env
from crm_recommend.config import settings
from crm_recommend.database import SCHEMA
from crm_recommend.models import metadata

run_env(SCHEMA, metadata, settings.database_url)
