"""Every ORM model and table of the segment service (imported so Alembic sees them all)."""

from crm_segment.database import Base, metadata
from crm_segment.models.customer import Customer, ErasedCustomer
from crm_segment.models.messaging import dead_letter_table, inbox_table, outbox, outbox_table

__all__ = [
    "Base",
    "Customer",
    "ErasedCustomer",
    "dead_letter_table",
    "inbox_table",
    "metadata",
    "outbox",
    "outbox_table",
]
