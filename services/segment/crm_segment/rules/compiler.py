"""The rule language: JSON rules validated and compiled to parameterised SQLAlchemy Core.

Interface used by segments, tags and the evaluator (the compiler owns the details):

- :func:`compile_rule` validates a rule and returns a :class:`CompiledRule` or raises
  :class:`crm_segment.rules.errors.RuleError` with the JSON path of the offending node.
- ``CompiledRule.predicate`` is a boolean expression over the root customer row
  ``crm_segment.models.Customer`` (correlated subqueries for scores, orders, events, tags,
  consents, loyalty, memberships); the evaluator selects
  ``Customer.customer_external_id`` ``WHERE status = 'active' AND <predicate>``.
- ``CompiledRule.windows`` names every time window the rule looks through, as
  ``(source, days)`` with source ``orders`` or ``events``; the evaluator schedules a
  customer's re-evaluation for when the oldest fact inside such a window leaves it.
- ``CompiledRule.segments`` holds the ids of other segments the rule refers to.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement


@dataclass(frozen=True)
class CompiledRule:
    """A validated rule as SQL."""

    predicate: ColumnElement[bool]
    windows: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    segments: frozenset[uuid.UUID] = field(default_factory=frozenset)


def compile_rule(rule: Mapping[str, Any], *, now: datetime, path: str = "rule") -> CompiledRule:
    """Validate ``rule`` and compile it for evaluation at ``now``."""
    raise NotImplementedError
