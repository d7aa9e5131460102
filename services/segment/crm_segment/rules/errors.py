"""Errors of the rule language: every one names the JSON path of the offending node."""

from __future__ import annotations

from crm_common.errors import FieldError, UnprocessableEntity


class RuleError(UnprocessableEntity):
    """A rule that cannot be compiled: unknown key, field or operator, wrong type, too big.

    ``path`` is the JSON path of the offending node (``rule.all[2].op``); it is also the
    ``field`` of the single entry in ``errors``.
    """

    slug = "invalid-rule"
    title = "Invalid segment rule"

    def __init__(self, path: str, reason: str, code: str) -> None:
        """Keep the path, the reason and a stable machine-readable code."""
        super().__init__(
            f"{path}: {reason}", errors=[FieldError(field=path, reason=reason, code=code)]
        )
        self.path = path
        self.reason = reason
        self.code = code
