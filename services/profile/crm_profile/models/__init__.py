"""Every ORM model and table of the profile service (imported so Alembic sees them all)."""

from crm_profile.database import Base, metadata
from crm_profile.models.behaviour import BehaviourEvent
from crm_profile.models.consent import Consent, ConsentHistory
from crm_profile.models.customer import Customer, CustomerIdentity, Merge
from crm_profile.models.gdpr import ErasureAudit, ExportJob
from crm_profile.models.messaging import (
    audit,
    audit_table,
    dead_letter_table,
    inbox_table,
    outbox,
    outbox_table,
)
from crm_profile.models.order import Order, OrderLine, OrderStatusChange, Refund
from crm_profile.models.order_request import OrderRequestKey as OrderRequestKey
from crm_profile.models.tag import CustomerTag
from crm_profile.models.tag_change import CustomerTagChange as CustomerTagChange

__all__ = [
    "Base",
    "BehaviourEvent",
    "Consent",
    "ConsentHistory",
    "Customer",
    "CustomerIdentity",
    "CustomerTag",
    "ErasureAudit",
    "ExportJob",
    "Merge",
    "Order",
    "OrderLine",
    "OrderStatusChange",
    "Refund",
    "audit",
    "audit_table",
    "dead_letter_table",
    "inbox_table",
    "metadata",
    "outbox",
    "outbox_table",
]
