"""Every ORM model and table of the profile service (imported so Alembic sees them all)."""

from crm_profile.database import Base, metadata
from crm_profile.models.messaging import dead_letter_table, inbox_table, outbox, outbox_table

__all__ = ["Base", "dead_letter_table", "inbox_table", "metadata", "outbox", "outbox_table"]
