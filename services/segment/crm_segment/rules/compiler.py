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

Nothing in a rule is ever evaluated as code: values become bound parameters and the only
identifiers in the SQL come from the field catalogue (:mod:`crm_segment.rules.fields`).
The language is documented in ``docs/segment/rules.md``.
"""

from __future__ import annotations

import math
import operator
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true

from crm_segment.models import (
    Customer,
    CustomerTag,
    InteractionDaily,
    Item,
    Order,
    OrderLine,
    SegmentMember,
)
from crm_segment.rules import fields as f
from crm_segment.rules.errors import RuleError

MAX_DEPTH = 10
MAX_NODES = 200
MAX_STRING = 256
MAX_LIST = 1000
MAX_DAYS = 3650
#: Count bounds of ``orders`` / ``events`` and sum bounds (minor units).
MAX_COUNT = 10**9
MAX_SUM = 10**15

EVENT_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_started",
    "review_submitted",
    "referral_converted",
    "complaint_filed",
    "app_open",
    "sign_in",
    "recommendation_clicked",
)
NODE_KEYS = ("all", "any", "not", "field", "orders", "events", "segment")
BOUND_OPS = ("eq", "gt", "gte", "lt", "lte", "between")
ORDERS_KEYS = frozenset(
    {"within_days", "count", "sum_minor", "category", "sku", "launched_within_days"}
)
EVENTS_KEYS = frozenset({"type", "within_days", "count", "where"})


@dataclass(frozen=True)
class CompiledRule:
    """A validated rule as SQL."""

    predicate: ColumnElement[bool]
    windows: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    segments: frozenset[uuid.UUID] = field(default_factory=frozenset)


def compile_rule(rule: Mapping[str, Any], *, now: datetime, path: str = "rule") -> CompiledRule:
    """Validate ``rule`` and compile it for evaluation at ``now``."""
    compiler = _Compiler(now)
    predicate = compiler.node(rule, path, 1)
    return CompiledRule(predicate, frozenset(compiler.windows), frozenset(compiler.references))


def segment_references(rule: Mapping[str, Any], *, path: str = "rule") -> dict[uuid.UUID, str]:
    """The segments a rule that :func:`compile_rule` accepted refers to, each with the JSON
    path of its first reference (for "unknown segment" and "cycle" errors)."""
    found: dict[uuid.UUID, str] = {}

    def walk(node: Mapping[str, Any], at: str) -> None:
        if "segment" in node:
            found.setdefault(uuid.UUID(node["segment"]), f"{at}.segment")
        for kind in ("all", "any"):
            for i, child in enumerate(node.get(kind, ())):
                walk(child, f"{at}.{kind}[{i}]")
        if "not" in node:
            walk(node["not"], f"{at}.not")

    walk(rule, path)
    return found


def referenced_ids(rule: Any) -> set[uuid.UUID]:
    """Segment ids named anywhere in a stored rule (lenient: for walking saved segments)."""
    found: set[uuid.UUID] = set()
    if isinstance(rule, dict):
        ref = rule.get("segment")
        if isinstance(ref, str):
            try:
                found.add(uuid.UUID(ref))
            except ValueError:
                pass
        for value in rule.values():
            found |= referenced_ids(value)
    elif isinstance(rule, list):
        for item in rule:
            found |= referenced_ids(item)
    return found


def _type_name(value: Any) -> str:
    """The JSON type of ``value`` for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _mismatch(path: str, expected: str, value: Any) -> RuleError:
    return RuleError(path, f"expected {expected}, got {_type_name(value)}", "type_mismatch")


class _Compiler:
    """One compilation: counts nodes, collects windows and segment references."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.now = now.astimezone(UTC)
        self.nodes = 0
        self.windows: set[tuple[str, int]] = set()
        self.references: dict[uuid.UUID, str] = {}

    # -- structure ---------------------------------------------------------------------------

    def node(self, node: Any, path: str, depth: int) -> ColumnElement[bool]:
        """Compile one node (combinator or condition)."""
        if not isinstance(node, Mapping):
            raise _mismatch(path, "an object (a rule node)", node)
        if depth > MAX_DEPTH:
            raise RuleError(path, f"rules may nest at most {MAX_DEPTH} levels", "too_deep")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RuleError(path, f"a rule may have at most {MAX_NODES} nodes", "too_many_nodes")
        kinds = [k for k in NODE_KEYS if k in node]
        if not kinds:
            if not node:
                raise RuleError(
                    path, f"empty node: expected one of {', '.join(NODE_KEYS)}", "invalid_node"
                )
            key = next(iter(node))
            raise RuleError(
                f"{path}.{key}",
                f"unknown key (expected one of {', '.join(NODE_KEYS)})",
                "unknown_key",
            )
        kind = kinds[0]
        allowed = {"field", "op", "value"} if kind == "field" else {kind}
        for key in node:
            if key not in allowed:
                raise RuleError(f"{path}.{key}", f"unknown key in a {kind!r} node", "unknown_key")
        body = node[kind]
        sub = f"{path}.{kind}"
        if kind in ("all", "any"):
            return self.combine(kind, body, sub, depth)
        if kind == "not":
            return not_(self.node(body, sub, depth + 1))
        if kind == "field":
            return self.condition(node, path)
        if kind == "orders":
            return self.orders(body, sub)
        if kind == "events":
            return self.events(body, sub)
        return self.segment(body, sub)

    def combine(self, kind: str, items: Any, path: str, depth: int) -> ColumnElement[bool]:
        """``all`` / ``any`` of a non-empty list of nodes."""
        if not isinstance(items, list):
            raise _mismatch(path, "an array of rule nodes", items)
        if not items:
            raise RuleError(path, "must hold at least one rule node", "invalid_value")
        parts = [self.node(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]
        return and_(true(), *parts) if kind == "all" else or_(false(), *parts)

    def segment(self, ref: Any, path: str) -> ColumnElement[bool]:
        """Membership of another segment (materialised members)."""
        if not isinstance(ref, str):
            raise _mismatch(path, "a segment id (UUID string)", ref)
        try:
            segment_id = uuid.UUID(ref)
        except ValueError:
            raise RuleError(path, "not a segment id (UUID)", "invalid_value") from None
        self.references.setdefault(segment_id, path)
        return exists().where(
            SegmentMember.segment_id == segment_id,
            SegmentMember.customer_external_id == Customer.customer_external_id,
        )

    # -- field conditions --------------------------------------------------------------------

    def condition(self, node: Mapping[str, Any], path: str) -> ColumnElement[bool]:
        """``{"field": F, "op": OP, "value": V}``."""
        name = node["field"]
        if not isinstance(name, str):
            raise _mismatch(f"{path}.field", "a field name", name)
        spec = f.lookup(name)
        if spec is None:
            raise RuleError(
                f"{path}.field", f"unknown field {name[:MAX_STRING]!r}", "unknown_field"
            )
        if "op" not in node:
            raise RuleError(f"{path}.op", "missing operator", "missing_key")
        op = node["op"]
        if not isinstance(op, str) or op not in f.ALL_OPERATORS:
            raise RuleError(f"{path}.op", f"unknown operator {str(op)[:64]!r}", "unknown_operator")
        kind = spec.type.kind
        if op not in f.OPERATORS[kind]:
            raise RuleError(
                f"{path}.op",
                f"operator {op!r} does not apply to {kind} field {name!r}",
                "type_mismatch",
            )
        if "value" not in node:
            raise RuleError(f"{path}.value", "missing value", "missing_key")
        vpath = f"{path}.value"
        value = node["value"]
        if op == "exists":
            if not isinstance(value, bool):
                raise _mismatch(vpath, "true or false", value)
        if kind == f.TAGS:
            return self.tags(op, value, vpath)
        if kind == f.JSON:
            return self.attribute(name.removeprefix("attributes."), op, value, vpath)
        source = spec.source()
        if op == "exists":
            present = source.wrap(source.value.is_not(None))
            return present if value else not_(present)
        operand = self.operand(spec.type, op, value, vpath)
        return source.wrap(_compare(source.value, op, operand))

    def operand(self, vtype: f.ValueType, op: str, value: Any, path: str) -> Any:
        """Check ``value`` for ``op`` on a field of ``vtype``; the Python value(s) to bind."""
        if op in ("in", "not_in"):
            if not isinstance(value, list):
                raise _mismatch(path, "an array", value)
            if not value:
                raise RuleError(path, "must hold at least one value", "invalid_value")
            if len(value) > MAX_LIST:
                raise RuleError(path, f"at most {MAX_LIST} values", "too_many_items")
            return [self.scalar(vtype, v, f"{path}[{i}]") for i, v in enumerate(value)]
        if op == "between":
            lo, hi = self.pair(value, path, lambda v, p: self.scalar(vtype, v, p))
            return lo, hi
        if op == "contains":
            return self.string(value, path)
        return self.scalar(vtype, value, path)

    def pair(self, value: Any, path: str, check: Callable[[Any, str], Any]) -> tuple[Any, Any]:
        """``[lo, hi]`` with ``lo <= hi``."""
        if not isinstance(value, list):
            raise _mismatch(path, "[low, high]", value)
        if len(value) != 2:
            raise RuleError(path, "between takes exactly two values: [low, high]", "invalid_value")
        lo, hi = check(value[0], f"{path}[0]"), check(value[1], f"{path}[1]")
        if lo > hi:
            raise RuleError(path, "low must not be greater than high", "invalid_value")
        return lo, hi

    def string(self, value: Any, path: str) -> str:
        """A string of at most ``MAX_STRING`` characters, without NUL."""
        if not isinstance(value, str):
            raise _mismatch(path, "a string", value)
        if len(value) > MAX_STRING:
            raise RuleError(path, f"strings are limited to {MAX_STRING} characters", "too_long")
        if "\x00" in value:
            raise RuleError(path, "strings may not contain NUL characters", "invalid_value")
        return value

    def scalar(self, vtype: f.ValueType, value: Any, path: str) -> Any:
        """One value of ``vtype``."""
        kind = vtype.kind
        if kind in (f.STRING, f.ENUM):
            text = self.string(value, path)
            if kind == f.ENUM and text not in vtype.choices:
                raise RuleError(
                    path, f"expected one of {', '.join(vtype.choices)}", "invalid_value"
                )
            return text
        if kind == f.UUID:
            try:
                return uuid.UUID(self.string(value, path))
            except ValueError:
                raise RuleError(path, "expected a UUID", "invalid_value") from None
        if kind == f.DATETIME:
            return _datetime(value, path)
        if kind == f.INTEGER and not _is_int(value):
            raise _mismatch(path, "an integer", value)
        if not _is_number(value):
            raise _mismatch(path, "a number", value)
        if vtype.minimum is not None and value < vtype.minimum:
            raise RuleError(path, f"must be at least {vtype.minimum}", "out_of_range")
        if vtype.maximum is not None and value > vtype.maximum:
            raise RuleError(path, f"must be at most {vtype.maximum}", "out_of_range")
        return value

    def tags(self, op: str, value: Any, path: str) -> ColumnElement[bool]:
        """``tags``: has a tag (``contains``), any of (``in``), none of (``not_in``), any at all."""
        mine = CustomerTag.root_external_id == Customer.customer_external_id
        if op == "exists":
            has_any = exists().where(mine)
            return has_any if value else not_(has_any)
        if op == "contains":
            return exists().where(mine, CustomerTag.tag == self.string(value, path))
        names = self.operand(f.ValueType(f.STRING), op, value, path)
        has = exists().where(mine, CustomerTag.tag.in_(names))
        return has if op == "in" else not_(has)

    def attribute(self, key: str, op: str, value: Any, path: str) -> ColumnElement[bool]:
        """``attributes.<key>``: compared as text, number or boolean after the value's JSON type."""
        if op == "exists":
            typ = func.jsonb_typeof(f.attribute_node(key))
            present = func.coalesce(typ != "null", false())
            return present if value else not_(present)
        if op == "contains":
            text = self.string(value, path)
            node = f.attribute_node(key)
            in_array = and_(
                func.jsonb_typeof(node) == "array", node.contains(func.jsonb_build_array(text))
            )
            substring = f.attribute_value(key, "string").icontains(text, autoescape=True)
            return func.coalesce(or_(substring, in_array), false())
        json_type = self.json_type(op, value, path)
        vtype = f.ValueType(f.NUMBER if json_type == "number" else f.STRING)
        if json_type == "boolean":
            if op not in ("eq", "ne"):
                raise RuleError(
                    f"{path}", f"booleans only take eq or ne, not {op}", "type_mismatch"
                )
            operand: Any = value
        else:
            operand = self.operand(vtype, op, value, path)
        if json_type == "number":  # bound as NUMERIC: any JSON number, however large
            operand = _decimal(operand)
        return func.coalesce(_compare(f.attribute_value(key, json_type), op, operand), false())

    def json_type(self, op: str, value: Any, path: str) -> str:
        """``string``, ``number`` or ``boolean``: the JSON type the attribute is compared as."""
        items = value if isinstance(value, list) and op in ("in", "not_in", "between") else [value]
        if not items:
            raise RuleError(path, "must hold at least one value", "invalid_value")
        types = {_type_name(v) for v in items}
        if len(types) != 1 or types - {"string", "number", "boolean"}:
            raise RuleError(
                path, "values must be all strings, all numbers or a boolean", "type_mismatch"
            )
        json_type = types.pop()
        if json_type == "boolean" and op in ("in", "not_in", "between"):
            raise RuleError(path, "booleans only take eq or ne", "type_mismatch")
        return json_type

    # -- orders and events -------------------------------------------------------------------

    def days(self, body: Mapping[str, Any], key: str, path: str) -> int:
        """A whole number of days in 1..MAX_DAYS."""
        if key not in body:
            raise RuleError(f"{path}.{key}", "missing", "missing_key")
        value = body[key]
        if not _is_int(value):
            raise _mismatch(f"{path}.{key}", "an integer number of days", value)
        if not 1 <= value <= MAX_DAYS:
            raise RuleError(f"{path}.{key}", f"must be between 1 and {MAX_DAYS}", "out_of_range")
        return int(value)

    def object(self, body: Any, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        """An object whose keys are all in ``allowed``."""
        if not isinstance(body, Mapping):
            raise _mismatch(path, "an object", body)
        for key in body:
            if key not in allowed:
                raise RuleError(
                    f"{path}.{key}",
                    f"unknown key (expected {', '.join(sorted(allowed))})",
                    "unknown_key",
                )
        return body

    def bounds(
        self,
        body: Mapping[str, Any],
        key: str,
        path: str,
        aggregate: ColumnElement[Any],
        limit: int,
    ) -> list[ColumnElement[bool]]:
        """``{"gte": n, ...}`` on ``aggregate`` (every bound must hold)."""
        bpath = f"{path}.{key}"
        spec = body.get(key, {"gte": 1} if key == "count" else None)
        if spec is None:
            return []
        spec = self.object(spec, bpath, frozenset(BOUND_OPS))
        if not spec:
            raise RuleError(
                bpath, f"expected at least one of {', '.join(BOUND_OPS)}", "invalid_value"
            )
        lowest = 0 if key == "count" else -limit
        vtype = f.ValueType(f.INTEGER, minimum=lowest, maximum=limit)
        out = []
        for op, value in spec.items():
            operand = self.operand(vtype, op, value, f"{bpath}.{op}")
            out.append(_compare(aggregate, op, operand))
        return out

    def orders(self, body: Any, path: str) -> ColumnElement[bool]:
        """Count / net sum of the customer's qualifying orders in the last N days."""
        body = self.object(body, path, ORDERS_KEYS)
        days = self.days(body, "within_days", path)
        conditions = [f.qualifying_orders(), Order.placed_at > self.now - timedelta(days=days)]
        conditions.append(Order.placed_at <= self.now)
        line = self.order_line(body, path)
        if line is not None:
            conditions.append(line)
        having = self.bounds(body, "count", path, func.count(), MAX_COUNT)
        net = func.coalesce(func.sum(Order.total_minor - Order.refunded_minor), 0)
        having += self.bounds(body, "sum_minor", path, net, MAX_SUM)
        self.windows.add(("orders", days))
        # An aggregate without GROUP BY yields one row even with no order, so "count eq 0" holds.
        return exists(select(1).where(*conditions).having(and_(*having)))

    def order_line(self, body: Mapping[str, Any], path: str) -> ColumnElement[bool] | None:
        """The order has a line in ``category`` / of ``sku`` / of an item launched recently."""
        line = [OrderLine.order_external_id == Order.order_external_id]
        for key, column in (("category", OrderLine.category), ("sku", OrderLine.sku)):
            if key in body:
                line.append(column == self.string(body[key], f"{path}.{key}"))
        if "launched_within_days" in body:
            launch = self.days(body, "launched_within_days", path)
            line += [
                Item.sku == OrderLine.sku,
                Item.launched_at <= Order.placed_at,
                Item.launched_at >= Order.placed_at - timedelta(days=launch),
            ]
        return exists().where(*line) if len(line) > 1 else None

    def events(self, body: Any, path: str) -> ColumnElement[bool]:
        """Interactions of a type on the last N days (UTC days, today included)."""
        body = self.object(body, path, EVENTS_KEYS)
        if "type" not in body:
            raise RuleError(f"{path}.type", "missing", "missing_key")
        kind = body["type"]
        if not isinstance(kind, str) or kind not in EVENT_TYPES:
            raise RuleError(
                f"{path}.type", f"expected one of {', '.join(EVENT_TYPES)}", "invalid_value"
            )
        days = self.days(body, "within_days", path)
        today = self.now.date()
        conditions = [
            InteractionDaily.root_external_id == Customer.customer_external_id,
            InteractionDaily.type == kind,
            InteractionDaily.day > today - timedelta(days=days),
            InteractionDaily.day <= today,
        ]
        if "where" in body:
            where = self.object(body["where"], f"{path}.where", frozenset({"category", "sku"}))
            for key, column in (
                ("category", InteractionDaily.category),
                ("sku", InteractionDaily.sku),
            ):
                if key in where:
                    conditions.append(column == self.string(where[key], f"{path}.where.{key}"))
        total = func.coalesce(func.sum(InteractionDaily.count), 0)
        having = self.bounds(body, "count", path, total, MAX_COUNT)
        self.windows.add(("events", days))
        return exists(select(1).where(*conditions).having(and_(*having)))


def _datetime(value: Any, path: str) -> datetime:
    """An ISO 8601 time with offset, or a date (midnight UTC)."""
    if not isinstance(value, str) or len(value) > 64:
        raise _mismatch(path, "an ISO 8601 date or time with offset", value)
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RuleError(
            path, "expected an ISO 8601 date or time with offset", "invalid_value"
        ) from None
    if parsed.tzinfo is None:
        raise RuleError(path, "a time needs an offset (e.g. Z or +02:00)", "invalid_value")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise RuleError(path, "time out of range", "out_of_range") from None


def _decimal(operand: Any) -> Any:
    """Numbers (or a list / pair of them) as :class:`Decimal`."""
    if isinstance(operand, list | tuple):
        return type(operand)(_decimal(v) for v in operand)
    return Decimal(repr(operand)) if isinstance(operand, float) else Decimal(operand)


def _compare(expr: f.Expr, op: str, operand: Any) -> ColumnElement[bool]:
    """``expr <op> operand`` with ``operand`` bound as parameter(s)."""
    result: ColumnElement[bool]
    if op in _COMPARISONS:
        result = _COMPARISONS[op](expr, operand)
    elif op == "in":
        result = expr.in_(operand)
    elif op == "not_in":
        result = expr.not_in(operand)
    elif op == "between":
        result = expr.between(*operand)
    else:  # contains: a substring, case-insensitive; % and _ in the value are literal
        result = expr.icontains(operand, autoescape=True)
    return result


_COMPARISONS: Mapping[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
