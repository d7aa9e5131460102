"""Errors of the jobs API."""

from crm_common.errors import NotFound


class JobNotFound(NotFound):
    """No job with that id."""

    slug = "job-not-found"
    title = "Job not found"
