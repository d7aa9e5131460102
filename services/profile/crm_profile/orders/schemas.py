"""Request and response models of the orders API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crm_profile.config import settings
from crm_profile.customers.schemas import ExternalId, SourceChannel
from crm_profile.orders.currency import check_currency

#: Largest amount (minor units) any money field or an order's subtotal may hold: 10^15 keeps
#: every sum far inside PostgreSQL's BIGINT.
MAX_MINOR = 10**15
MAX_UNIT_PRICE = 10**12
MAX_QUANTITY = 100_000
MAX_LINES = 500
MAX_COUPONS = 20

OrderStatus = Literal["placed", "paid", "shipped", "delivered", "cancelled"]
NewStatus = Literal["paid", "shipped", "delivered", "cancelled"]


def _not_future(value: datetime) -> datetime:
    """UTC, and no later than now plus the configured clock skew."""
    value = value.astimezone(UTC)
    if value > datetime.now(UTC) + timedelta(seconds=settings.event_clock_skew_seconds):
        raise ValueError(
            f"must not be in the future (clock skew allowed: {settings.event_clock_skew_seconds}s)"
        )
    return value


# Integers are strict: "5" or true for a quantity or an amount is a client bug, not a 5 or a 1.
Money = Annotated[int, Strict(), Field(ge=0, le=MAX_MINOR)]
Quantity = Annotated[int, Strict(), Field(ge=1, le=MAX_QUANTITY)]
Timestamp = Annotated[AwareDatetime, AfterValidator(_not_future)]
Sku = Annotated[str, Field(min_length=1, max_length=128)]
Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(check_currency)]
CouponCode = Annotated[str, Field(min_length=1, max_length=64)]


class OrderLineIn(BaseModel):
    """One line as the shop sends it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: Sku
    quantity: Quantity
    unit_price_minor: Annotated[int, Strict(), Field(ge=0, le=MAX_UNIT_PRICE)]
    category: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class OrderCreate(BaseModel):
    """``POST /v1/orders``: an order placed in the shop.

    Fields are validated in declaration order, so the totals checks on ``discount_minor`` and
    ``total_minor`` see the lines (and each other) already validated and name their own field.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: ExternalId
    customer_external_id: ExternalId
    placed_at: Timestamp
    currency: Currency
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=MAX_LINES)]
    discount_minor: Money
    shipping_minor: Money
    total_minor: Money
    channel: SourceChannel | None = None
    coupon_codes: Annotated[list[CouponCode], Field(max_length=MAX_COUPONS)] = []
    points_redeemed: Annotated[int, Strict(), Field(ge=0, le=MAX_MINOR)] = 0

    @field_validator("lines")
    @classmethod
    def _subtotal_in_range(cls, lines: list[OrderLineIn]) -> list[OrderLineIn]:
        if subtotal_of(lines) > MAX_MINOR:
            raise ValueError(f"the subtotal of the lines exceeds {MAX_MINOR}")
        return lines

    @field_validator("discount_minor")
    @classmethod
    def _discount_within_subtotal(cls, discount: int, info: ValidationInfo) -> int:
        lines = info.data.get("lines")
        if lines is not None and discount > (subtotal := subtotal_of(lines)):
            raise ValueError(f"must not exceed the subtotal of the lines ({subtotal})")
        return discount

    @field_validator("total_minor")
    @classmethod
    def _total_adds_up(cls, total: int, info: ValidationInfo) -> int:
        data = info.data
        if not {"lines", "discount_minor", "shipping_minor"} <= data.keys():
            return total  # a part is invalid and reported on its own
        subtotal = subtotal_of(data["lines"])
        expected = subtotal - data["discount_minor"] + data["shipping_minor"]
        if total != expected:
            raise ValueError(
                f"does not add up: expected {expected} (subtotal {subtotal} − discount "
                f"{data['discount_minor']} + shipping {data['shipping_minor']})"
            )
        return total

    @field_validator("coupon_codes")
    @classmethod
    def _distinct_coupons(cls, codes: list[str]) -> list[str]:
        if len(set(codes)) != len(codes):
            raise ValueError("coupon codes must be distinct")
        return codes


def subtotal_of(lines: list[OrderLineIn]) -> int:
    """Sum of quantity × unit price."""
    return sum(line.quantity * line.unit_price_minor for line in lines)


class OrderLineRead(BaseModel):
    """One line of an order, with the units refunded so far."""

    model_config = ConfigDict(from_attributes=True)

    sku: str
    quantity: int
    unit_price_minor: int
    category: str | None
    refunded_quantity: int


class StatusChangeRead(BaseModel):
    """One status the order went through."""

    model_config = ConfigDict(from_attributes=True)

    status: OrderStatus
    changed_at: datetime


class OrderRead(BaseModel):
    """An order as the API returns it."""

    id: uuid.UUID
    external_id: str
    customer_external_id: str
    placed_at: datetime
    currency: str
    lines: list[OrderLineRead]
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    total_minor: int
    refunded_minor: int
    status: OrderStatus
    channel: str | None
    coupon_codes: list[str]
    points_redeemed: int
    status_history: list[StatusChangeRead] = Field(description="Oldest first, from `placed`")
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    """A page of orders, newest first."""

    items: list[OrderRead]
    next_cursor: str | None


class StatusChange(BaseModel):
    """``POST /v1/orders/{external_id}/status``."""

    model_config = ConfigDict(extra="forbid")

    status: NewStatus
    changed_at: Timestamp | None = Field(default=None, description="Defaults to now")


class RefundLineIn(BaseModel):
    """Units of one SKU to refund."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: Sku
    quantity: Quantity


class RefundCreate(BaseModel):
    """``POST /v1/orders/{external_id}/refunds``: either ``lines`` or ``amount_minor``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    lines: Annotated[list[RefundLineIn], Field(min_length=1, max_length=MAX_LINES)] | None = None
    amount_minor: Annotated[int, Strict(), Field(ge=1, le=MAX_MINOR)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None

    @field_validator("lines")
    @classmethod
    def _distinct_skus(cls, lines: list[RefundLineIn] | None) -> list[RefundLineIn] | None:
        if lines is not None and len({line.sku for line in lines}) != len(lines):
            raise ValueError("each SKU at most once (add up its units)")
        return lines

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.lines is None) == (self.amount_minor is None):
            raise ValueError("send exactly one of lines or amount_minor")
        return self


class RefundLineRead(BaseModel):
    """Units of one SKU refunded."""

    sku: str
    quantity: int


class RefundRead(BaseModel):
    """A refund as the API returns it."""

    id: uuid.UUID
    order_external_id: str
    amount_minor: int
    lines: list[RefundLineRead] = Field(description="Empty for a refund by amount")
    reason: str | None
    created_at: datetime
    refunded_total_minor: int = Field(description="Refunded on the order so far (as of now)")
