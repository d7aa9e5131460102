"""Errors of the GDPR API."""

from crm_common.errors import NotFound


class ExportNotFound(NotFound):
    """No export with that id (or not one the caller may read)."""

    slug = "export-not-found"
    title = "Export not found"
