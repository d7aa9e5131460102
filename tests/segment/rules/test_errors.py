"""Bad rules: each is refused with the JSON path of the offending node."""

from __future__ import annotations

from typing import Any

import pytest

from crm_segment.rules.compiler import compile_rule
from crm_segment.rules.errors import RuleError
from tests.segment.rules.factories import NOW

DE = {"field": "country", "op": "eq", "value": "DE"}


def error_of(rule: Any, path: str = "rule") -> RuleError:
    with pytest.raises(RuleError) as caught:
        compile_rule(rule, now=NOW, path=path)
    error = caught.value
    assert error.status_code == 422
    assert [e.field for e in error.errors] == [error.path]
    return error


def nested(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = DE
    for _ in range(depth - 1):
        rule = {"not": rule}
    return rule


@pytest.mark.parametrize(
    ("rule", "path", "code"),
    [
        # structure
        ([DE], "rule", "type_mismatch"),
        ({}, "rule", "invalid_node"),
        ({"colour": "red"}, "rule.colour", "unknown_key"),
        (
            {"all": [DE, {"field": "country", "op": "eq", "value": "DE", "x": 1}]},
            "rule.all[1].x",
            "unknown_key",
        ),
        ({"all": [DE], "any": [DE]}, "rule.any", "unknown_key"),
        ({"all": []}, "rule.all", "invalid_value"),
        ({"any": DE}, "rule.any", "type_mismatch"),
        ({"not": [DE]}, "rule.not", "type_mismatch"),
        ({"all": [DE, "country = 'DE'"]}, "rule.all[1]", "type_mismatch"),
        # fields and operators
        (
            {"all": [DE, DE, {"field": "colour", "op": "eq", "value": "x"}]},
            "rule.all[2].field",
            "unknown_field",
        ),
        ({"field": 7, "op": "eq", "value": "x"}, "rule.field", "type_mismatch"),
        ({"field": "attributes.bad key", "op": "eq", "value": "x"}, "rule.field", "unknown_field"),
        (
            {"field": "consent.fax.marketing", "op": "eq", "value": "granted"},
            "rule.field",
            "unknown_field",
        ),
        (
            {"all": [DE, DE, {"field": "country", "op": "like", "value": "D%"}]},
            "rule.all[2].op",
            "unknown_operator",
        ),
        ({"field": "country", "value": "DE"}, "rule.op", "missing_key"),
        ({"field": "country", "op": "eq"}, "rule.value", "missing_key"),
        ({"field": "country", "op": "gt", "value": "DE"}, "rule.op", "type_mismatch"),
        ({"field": "tags", "op": "eq", "value": "vip"}, "rule.op", "type_mismatch"),
        (
            {"field": "registered_at", "op": "in", "value": ["2026-01-01"]},
            "rule.op",
            "type_mismatch",
        ),
        # values
        ({"field": "country", "op": "eq", "value": 49}, "rule.value", "type_mismatch"),
        ({"field": "birthday_month", "op": "eq", "value": "3"}, "rule.value", "type_mismatch"),
        ({"field": "birthday_month", "op": "eq", "value": True}, "rule.value", "type_mismatch"),
        ({"field": "birthday_month", "op": "eq", "value": 3.5}, "rule.value", "type_mismatch"),
        ({"field": "birthday_month", "op": "eq", "value": 13}, "rule.value", "out_of_range"),
        ({"field": "p_alive", "op": "gt", "value": 1.5}, "rule.value", "out_of_range"),
        ({"field": "rfm.group", "op": "eq", "value": "whales"}, "rule.value", "invalid_value"),
        (
            {"field": "lifecycle", "op": "in", "value": ["new", "zombie"]},
            "rule.value[1]",
            "invalid_value",
        ),
        (
            {"field": "consent.email.marketing", "op": "eq", "value": "yes"},
            "rule.value",
            "invalid_value",
        ),
        ({"field": "cluster_id", "op": "eq", "value": "not-a-uuid"}, "rule.value", "invalid_value"),
        (
            {"field": "registered_at", "op": "gt", "value": "2026-01-01T00:00:00"},
            "rule.value",
            "invalid_value",
        ),
        (
            {"field": "registered_at", "op": "gt", "value": "9999-12-31T23:00:00-05:00"},
            "rule.value",
            "out_of_range",
        ),
        (
            {"field": "registered_at", "op": "gt", "value": "yesterday"},
            "rule.value",
            "invalid_value",
        ),
        ({"field": "country", "op": "exists", "value": "yes"}, "rule.value", "type_mismatch"),
        ({"field": "country", "op": "in", "value": "DE"}, "rule.value", "type_mismatch"),
        ({"field": "country", "op": "in", "value": []}, "rule.value", "invalid_value"),
        ({"field": "country", "op": "in", "value": ["DE", 4]}, "rule.value[1]", "type_mismatch"),
        ({"field": "country", "op": "eq", "value": "x" * 257}, "rule.value", "too_long"),
        ({"field": "country", "op": "eq", "value": "D\x00E"}, "rule.value", "invalid_value"),
        (
            {"field": "attributes.size", "op": "in", "value": [1, "2"]},
            "rule.value",
            "type_mismatch",
        ),
        ({"field": "attributes.size", "op": "gt", "value": True}, "rule.value", "type_mismatch"),
        (
            {"field": "attributes.size", "op": "eq", "value": {"a": 1}},
            "rule.value",
            "type_mismatch",
        ),
        (
            {"field": "attributes.size", "op": "eq", "value": float("inf")},
            "rule.value",
            "type_mismatch",
        ),
        # between shapes
        ({"field": "birthday_month", "op": "between", "value": 3}, "rule.value", "type_mismatch"),
        (
            {"field": "birthday_month", "op": "between", "value": [1, 2, 3]},
            "rule.value",
            "invalid_value",
        ),
        (
            {"field": "birthday_month", "op": "between", "value": [6, 1]},
            "rule.value",
            "invalid_value",
        ),
        (
            {"field": "birthday_month", "op": "between", "value": [1, "6"]},
            "rule.value[1]",
            "type_mismatch",
        ),
        # orders
        ({"orders": {"count": {"gte": 1}}}, "rule.orders.within_days", "missing_key"),
        ({"orders": {"within_days": 0}}, "rule.orders.within_days", "out_of_range"),
        ({"orders": {"within_days": 3651}}, "rule.orders.within_days", "out_of_range"),
        ({"orders": {"within_days": "30"}}, "rule.orders.within_days", "type_mismatch"),
        ({"orders": {"within_days": 30, "colour": 1}}, "rule.orders.colour", "unknown_key"),
        ({"orders": {"within_days": 30, "count": 2}}, "rule.orders.count", "type_mismatch"),
        ({"orders": {"within_days": 30, "count": {}}}, "rule.orders.count", "invalid_value"),
        (
            {"orders": {"within_days": 30, "count": {"ne": 1}}},
            "rule.orders.count.ne",
            "unknown_key",
        ),
        (
            {"any": [{"orders": {"within_days": 30, "count": {"gte": "1"}}}]},
            "rule.any[0].orders.count.gte",
            "type_mismatch",
        ),
        (
            {"orders": {"within_days": 30, "count": {"gte": -1}}},
            "rule.orders.count.gte",
            "out_of_range",
        ),
        (
            {"orders": {"within_days": 30, "sum_minor": {"between": [5]}}},
            "rule.orders.sum_minor.between",
            "invalid_value",
        ),
        ({"orders": {"within_days": 30, "sku": 5}}, "rule.orders.sku", "type_mismatch"),
        (
            {"orders": {"within_days": 30, "launched_within_days": 0}},
            "rule.orders.launched_within_days",
            "out_of_range",
        ),
        ({"orders": [30]}, "rule.orders", "type_mismatch"),
        # events
        ({"events": {"within_days": 7}}, "rule.events.type", "missing_key"),
        ({"events": {"type": "purchase", "within_days": 7}}, "rule.events.type", "invalid_value"),
        (
            {"events": {"type": "search", "within_days": 7, "where": {"query": "x"}}},
            "rule.events.where.query",
            "unknown_key",
        ),
        (
            {"events": {"type": "search", "within_days": 7, "where": {"sku": ["x"]}}},
            "rule.events.where.sku",
            "type_mismatch",
        ),
        (
            {"events": {"type": "search", "within_days": 7, "count": {"gte": 1.5}}},
            "rule.events.count.gte",
            "type_mismatch",
        ),
        # segment references
        ({"segment": "vip"}, "rule.segment", "invalid_value"),
        ({"segment": 5}, "rule.segment", "type_mismatch"),
    ],
)
def test_bad_rule_names_the_offending_node(rule, path, code):
    error = error_of(rule)
    assert (error.path, error.code) == (path, code)


def test_path_prefix_is_the_callers():
    assert error_of({"field": "colour", "op": "eq", "value": 1}, path="body.rule").path == (
        "body.rule.field"
    )


class TestLimits:
    def test_depth_ten_is_allowed(self):
        compile_rule(nested(10), now=NOW)

    def test_too_deep(self):
        error = error_of(nested(11))
        assert error.code == "too_deep"
        assert error.path == "rule" + ".not" * 10

    def test_two_hundred_nodes_are_allowed(self):
        compile_rule({"any": [DE] * 199}, now=NOW)

    def test_too_many_nodes(self):
        error = error_of({"any": [DE] * 200})
        assert (error.path, error.code) == ("rule.any[199]", "too_many_nodes")

    def test_in_list_limit(self):
        compile_rule({"field": "city", "op": "in", "value": [str(n) for n in range(1000)]}, now=NOW)
        error = error_of({"field": "city", "op": "in", "value": [str(n) for n in range(1001)]})
        assert (error.path, error.code) == ("rule.value", "too_many_items")

    def test_string_limit_on_field_names_and_keys(self):
        error = error_of({"field": "attributes." + "k" * 300, "op": "eq", "value": "x"})
        assert (error.path, error.code) == ("rule.field", "unknown_field")
        error = error_of({"orders": {"within_days": 1, "category": "c" * 257}})
        assert (error.path, error.code) == ("rule.orders.category", "too_long")


def test_error_renders_as_a_field_error():
    error = error_of({"all": [DE, DE, {"field": "country", "op": "like", "value": "x"}]})
    assert error.errors[0].model_dump() == {
        "field": "rule.all[2].op",
        "reason": "unknown operator 'like'",
        "code": "unknown_operator",
    }


def test_integer_beyond_the_column_is_out_of_range():
    error = error_of({"field": "orders_count", "op": "gt", "value": 2**31})
    assert (error.path, error.code) == ("rule.value", "out_of_range")
