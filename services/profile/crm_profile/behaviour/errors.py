"""Errors of the behaviour intake (a refused item is reported in the 202, not raised).

A body that is not JSON is a plain ``BadRequest`` (400) and a body that is not
``{"events": [1..1000 items]}`` a plain ``UnprocessableEntity`` (422), as everywhere else.
"""

from crm_common.errors import CrmError


class BatchTooLarge(CrmError):
    """The body is larger than any valid batch can be."""

    status_code = 413
    slug = "payload-too-large"
    title = "Request body too large"
