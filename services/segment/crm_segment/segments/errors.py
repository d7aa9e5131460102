"""Errors of the segments API (rule errors are :class:`crm_segment.rules.errors.RuleError`)."""

from crm_common.errors import Conflict, NotFound


class SegmentNotFound(NotFound):
    """No live segment with that id (never existed, or deleted)."""

    slug = "segment-not-found"
    title = "Segment not found"


class SegmentNameTaken(Conflict):
    """Another live segment already has that name."""

    slug = "segment-name-taken"
    title = "A segment with that name exists"


class SegmentInUse(Conflict):
    """Other live segments refer to this one in their rules."""

    slug = "segment-in-use"
    title = "Segment is referred to by other segments"


class SegmentReadOnly(Conflict):
    """A built-in or tag segment: managed by the service, only ``enabled`` may change here."""

    slug = "segment-read-only"
    title = "Built-in segment cannot be changed"


class CustomerNotFound(NotFound):
    """No customer with that external id is known to segment."""

    slug = "customer-not-found"
    title = "Customer not found"
