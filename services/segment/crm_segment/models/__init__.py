"""Every ORM model and table of the segment service (imported so Alembic sees them all)."""

from crm_segment.database import Base, metadata
from crm_segment.models.customer import Customer, ErasedCustomer
from crm_segment.models.erasure import ErasedExternalId
from crm_segment.models.messaging import dead_letter_table, inbox_table, outbox, outbox_table
from crm_segment.models.projection import (
    CustomerConsent,
    CustomerLoyalty,
    CustomerTag,
    InteractionDaily,
    Item,
    Order,
    OrderLine,
)
from crm_segment.models.scores import Cluster, CustomerScore, Job, ModelFit, RfmBoundaries
from crm_segment.models.segments import EvaluationQueue, Segment, SegmentMember

__all__ = [
    "Base",
    "Cluster",
    "Customer",
    "CustomerConsent",
    "CustomerLoyalty",
    "CustomerScore",
    "CustomerTag",
    "ErasedCustomer",
    "ErasedExternalId",
    "EvaluationQueue",
    "InteractionDaily",
    "Item",
    "Job",
    "ModelFit",
    "Order",
    "OrderLine",
    "RfmBoundaries",
    "Segment",
    "SegmentMember",
    "dead_letter_table",
    "inbox_table",
    "metadata",
    "outbox",
    "outbox_table",
]
