"""Errors of the scores API."""

from crm_common.errors import NotFound


class CustomerNotFound(NotFound):
    """Segment knows no customer (and no scored orders) under that external id."""

    slug = "customer-not-found"
    title = "Customer not found"
