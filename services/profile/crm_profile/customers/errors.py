"""Errors of the customers API."""

from crm_common.errors import Conflict, NotFound


class CustomerNotFound(NotFound):
    """No customer with that external id."""

    slug = "customer-not-found"
    title = "Customer not found"


class CustomerMerged(Conflict):
    """The customer was merged into another; write to the survivor instead."""

    slug = "customer-merged"
    title = "Customer was merged"
