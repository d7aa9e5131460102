"""Errors of the tags API."""

from crm_common.errors import NotFound


class TagNotFound(NotFound):
    """The customer does not carry that manual tag."""

    slug = "tag-not-found"
    title = "Tag not found"
