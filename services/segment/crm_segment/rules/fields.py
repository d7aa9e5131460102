"""The field catalogue of the rule language: every field a condition may test, its type and
where its value comes from.

Identifiers in the compiled SQL come only from here; the names a rule uses are looked up,
never spliced. Each field's value lives in a :class:`Source`: the SQL expression of the value
for the outer ``customer`` row and how a condition on it becomes a two-valued predicate (a
customer without the value matches no comparison, so ``not`` is the exact complement).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Numeric,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import QueryableAttribute

from crm_segment.models import (
    Customer,
    CustomerConsent,
    CustomerLoyalty,
    CustomerScore,
    Order,
    RfmBoundaries,
)

STRING = "string"
ENUM = "enum"
INTEGER = "integer"
NUMBER = "number"
DATETIME = "datetime"
UUID = "uuid"
TAGS = "tags"
JSON = "json"

#: Operators each value type accepts.
OPERATORS: Mapping[str, frozenset[str]] = {
    STRING: frozenset({"eq", "ne", "in", "not_in", "contains", "exists"}),
    ENUM: frozenset({"eq", "ne", "in", "not_in", "exists"}),
    INTEGER: frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "between", "exists"}),
    NUMBER: frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "between", "exists"}),
    DATETIME: frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "between", "exists"}),
    UUID: frozenset({"eq", "ne", "in", "not_in", "exists"}),
    TAGS: frozenset({"contains", "in", "not_in", "exists"}),
    JSON: frozenset(
        {"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "between", "contains", "exists"}
    ),
}
ALL_OPERATORS = frozenset().union(*OPERATORS.values())

RFM_GROUPS = (
    "champions",
    "loyal",
    "potential_loyalist",
    "new_customer",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cannot_lose",
    "hibernating",
)
LIFECYCLE_STAGES = ("prospect", "new", "active", "at_risk", "dormant", "churned")
CONSENT_CHANNELS = ("email", "sms", "push", "in_app")
CONSENT_PURPOSES = ("marketing", "transactional")
CONSENT_STATUSES = ("granted", "denied")
MEMBERSHIP_STATUSES = ("active", "cancelled", "expired")
#: A SQL value: a column (mapped attribute) or an expression.
Expr = ColumnElement[Any] | QueryableAttribute[Any]

#: Largest integer a rule may compare with: far inside BIGINT and exact in a double.
MAX_INT = 2**53
#: Largest value of an INTEGER (int4) column.
MAX_INT4 = 2**31 - 1

#: ``attributes.<key>``: the key is bound as a parameter, but kept to a readable shape.
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_\-:]{1,128}$")


@dataclass(frozen=True)
class ValueType:
    """The type of a field's values: what operators and values a condition may use."""

    kind: str
    choices: tuple[str, ...] = ()
    minimum: int | float | None = None
    maximum: int | float | None = None


@dataclass(frozen=True)
class Source:
    """A field's SQL value for the outer customer row, and how to make a condition two-valued."""

    value: Expr
    wrap: Callable[[ColumnElement[bool]], ColumnElement[bool]]


@dataclass(frozen=True)
class Field:
    """One catalogue entry."""

    name: str
    type: ValueType
    description: str
    source: Callable[[], Source]


def _coalesced(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """``condition`` with NULL (no value) read as false."""
    return func.coalesce(condition, false())


def _customer(column: Expr) -> Callable[[], Source]:
    """A column of the root customer row itself."""
    return lambda: Source(column, _coalesced)


def _score(column: Expr) -> Callable[[], Source]:
    """A column of the customer's ``customer_score`` row (absent row = no value)."""

    def wrap(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(
            CustomerScore.customer_external_id == Customer.customer_external_id, condition
        )

    return lambda: Source(column, wrap)


def _loyalty(column: Expr, changed: QueryableAttribute[Any]) -> Callable[[], Source]:
    """The newest loyalty value among the customer's rows (a merge may leave several)."""

    def build() -> Source:
        latest = (
            select(column)
            .where(CustomerLoyalty.root_external_id == Customer.customer_external_id)
            .order_by(changed.desc().nulls_last(), CustomerLoyalty.customer_external_id)
            .limit(1)
            .scalar_subquery()
        )
        return Source(latest, _coalesced)

    return build


def qualifying_orders() -> ColumnElement[bool]:
    """Orders of the outer customer that count: not cancelled, not fully refunded."""
    return and_(
        Order.root_external_id == Customer.customer_external_id,
        Order.status != "cancelled",
        Order.fully_refunded.is_(false()),
    )


def _discount_share() -> Source:
    """Share (0..1) of the customer's qualifying orders with a discount or a coupon."""
    discounted = or_(Order.discount_minor > 0, func.cardinality(Order.coupon_codes) > 0)
    share = (
        select(func.avg(case((discounted, 1.0), else_=0.0)))
        .where(qualifying_orders())
        .scalar_subquery()
    )
    return Source(share, _coalesced)


def consent_field(channel: str, purpose: str) -> Field:
    """``consent.<channel>.<purpose>``: the newest decision among the customer's rows."""

    def build() -> Source:
        latest = (
            select(CustomerConsent.status)
            .where(
                CustomerConsent.root_external_id == Customer.customer_external_id,
                CustomerConsent.channel == channel,
                CustomerConsent.purpose == purpose,
            )
            .order_by(CustomerConsent.decided_at.desc(), CustomerConsent.customer_external_id)
            .limit(1)
            .scalar_subquery()
        )
        return Source(latest, _coalesced)

    return Field(
        f"consent.{channel}.{purpose}",
        ValueType(ENUM, CONSENT_STATUSES),
        "latest consent decision",
        build,
    )


def attribute_node(key: str) -> ColumnElement[Any]:
    """``attributes -> key`` as JSONB (the key is a bound parameter)."""
    return func.jsonb_extract_path(Customer.attributes, key, type_=JSONB)


def attribute_value(key: str, json_type: str) -> ColumnElement[Any]:
    """``attributes -> key`` as SQL of ``json_type`` (``string``, ``number``, ``boolean``);
    NULL when the attribute is missing or of another JSON type (CASE keeps the cast from ever
    seeing a value of the wrong type)."""
    typed = func.jsonb_typeof(attribute_node(key)) == json_type
    text = func.jsonb_extract_path_text(Customer.attributes, key)
    if json_type == "number":
        return case((typed, cast(text, Numeric)), else_=None)
    if json_type == "boolean":
        return case((typed, cast(text, Boolean)), else_=None)
    return case((typed, text), else_=None)


def _int(minimum: int = -MAX_INT, maximum: int = MAX_INT) -> ValueType:
    return ValueType(INTEGER, minimum=minimum, maximum=maximum)


def _number(minimum: float | None = None, maximum: float | None = None) -> ValueType:
    return ValueType(NUMBER, minimum=minimum, maximum=maximum)


_STRING = ValueType(STRING)
_DATETIME = ValueType(DATETIME)
S = CustomerScore

#: Recency as of the latest RFM batch: score rows are not rewritten when only their recency
#: moved, so the stored value is brought forward by the days since it was computed.
_live_recency = _score(
    S.recency_days
    + func.greatest(
        func.coalesce(
            select(RfmBoundaries.as_of).where(RfmBoundaries.id == 1).scalar_subquery()
            - S.rfm_as_of,
            0,
        ),
        0,
    )
)
L = CustomerLoyalty

CATALOGUE: Mapping[str, Field] = {
    f.name: f
    for f in (
        Field("country", _STRING, "country code", _customer(Customer.country)),
        Field("city", _STRING, "city", _customer(Customer.city)),
        Field("locale", _STRING, "language tag", _customer(Customer.locale)),
        Field("gender", _STRING, "gender as profile holds it", _customer(Customer.gender)),
        Field(
            "source_channel", _STRING, "how the customer came", _customer(Customer.source_channel)
        ),
        Field("registered_at", _DATETIME, "registration time", _customer(Customer.registered_at)),
        Field("birthday_month", _int(1, 12), "month of birth", _customer(Customer.birthday_month)),
        Field("tags", ValueType(TAGS), "manual and rule tags", lambda: Source(false(), _coalesced)),
        Field(
            "rfm.recency_days",
            _int(0, MAX_INT4),
            "days since last order",
            _live_recency,
        ),
        Field(
            "rfm.frequency",
            _int(0, MAX_INT4),
            "qualifying orders in the window",
            _score(S.frequency),
        ),
        Field("rfm.monetary_minor", _int(), "net paid in the window", _score(S.monetary_minor)),
        Field("rfm.r", _int(1, 5), "recency score", _score(S.r)),
        Field("rfm.f", _int(1, 5), "frequency score", _score(S.f)),
        Field("rfm.m", _int(1, 5), "monetary score", _score(S.m)),
        Field("rfm.score", _STRING, 'R, F and M digits, like "543"', _score(S.rfm_score)),
        Field("rfm.group", ValueType(ENUM, RFM_GROUPS), "RFM group", _score(S.rfm_group)),
        Field(
            "lifecycle", ValueType(ENUM, LIFECYCLE_STAGES), "lifecycle stage", _score(S.lifecycle)
        ),
        Field("churn_probability", _number(0, 1), "1 - p_alive", _score(S.churn_probability)),
        Field("p_alive", _number(0, 1), "BG/NBD probability alive", _score(S.p_alive)),
        Field(
            "expected_purchases_90d",
            _number(0),
            "BG/NBD expected purchases",
            _score(S.expected_purchases_90d),
        ),
        Field("clv_12m_minor", _int(), "predicted 12-month CLV", _score(S.clv_12m_minor)),
        Field("value_score", _int(0, 100), "value score", _score(S.value_score)),
        Field("cluster_id", ValueType(UUID), "k-means cluster", _score(S.cluster_id)),
        Field(
            "orders_count", _int(0, MAX_INT4), "lifetime qualifying orders", _score(S.orders_count)
        ),
        Field("revenue_minor", _int(), "lifetime net revenue", _score(S.revenue_minor)),
        Field("first_order_at", _DATETIME, "first qualifying order", _score(S.first_order_at)),
        Field("last_order_at", _DATETIME, "last qualifying order", _score(S.last_order_at)),
        Field("discount_share", _number(0, 1), "share of discounted orders", _discount_share),
        Field("tier", _STRING, "loyalty tier", _loyalty(L.tier, L.tier_changed_at)),
        Field(
            "membership.status",
            ValueType(ENUM, MEMBERSHIP_STATUSES),
            "paid membership status",
            _loyalty(L.membership_status, L.membership_changed_at),
        ),
    )
}


def lookup(name: str) -> Field | None:
    """The catalogue entry of ``name`` (``attributes.<key>`` and ``consent.<c>.<p>`` included)."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    if name.startswith("attributes."):
        key = name.removeprefix("attributes.")
        if ATTRIBUTE_KEY.match(key):
            return Field(
                name, ValueType(JSON), "shop attribute", lambda: Source(false(), _coalesced)
            )
        return None
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "consent":
        if parts[1] in CONSENT_CHANNELS and parts[2] in CONSENT_PURPOSES:
            return consent_field(parts[1], parts[2])
    return None
