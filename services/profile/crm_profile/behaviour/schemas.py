"""Request and response models of ``POST /v1/events``: one properties model per event type.

These models are the reference for the rules: they document the body in OpenAPI and produce
every error reported. A valid batch is checked by their msgspec twins in ``fastpath`` instead
(about 3 times faster, see bench/README.md), so **a rule changed here must be changed there
too** (``tests/profile/behaviour/test_fastpath.py`` compares the two). Events are validated into
typed dicts rather than model instances: pydantic builds 1,000 dicts about four times faster.
Known properties are bounded so that a batch of 1,000 events fits one NATS message (see
``service.MAX_MESSAGE_BYTES``). Types whose properties feed analytics and money figures
(product, search, cart, checkout, review, complaint, sign-in, recommendation) refuse unknown
keys, so a typo such as ``qty`` is reported instead of silently lost; ``page_view`` and
``app_open`` also take the shop's own context (``utm_source``, ``screen``, ...) as up to 20
extra scalar keys.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictInt
from typing_extensions import TypedDict

from crm_common.errors import FieldError
from crm_profile.customers.schemas import ExternalId

MAX_EVENTS = 1000
MAX_EXTRA_KEYS = 20
#: Printable ASCII without spaces: UUIDs, ULIDs, ``web:123`` and the like.
Token = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
Sku = Annotated[str, Field(min_length=1, max_length=64)]
Category = Annotated[str, Field(min_length=1, max_length=128)]
Url = Annotated[str, Field(min_length=1, max_length=2048)]
Label = Annotated[str, Field(min_length=1, max_length=64)]
Short = Annotated[str, Field(min_length=1, max_length=32)]
Text = Annotated[str, Field(min_length=1, max_length=5000)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Quantity = Annotated[StrictInt, Field(ge=1, le=100_000)]
Money = Annotated[StrictInt, Field(ge=0, le=10**12)]

_CLOSED = ConfigDict(extra="forbid")
_OPEN = ConfigDict(extra="allow")


def _scalar(value: Any) -> bool:
    """A value an extra property may take: null, a boolean, a number or a short string."""
    if isinstance(value, str):
        return len(value) <= 256
    return value is None or isinstance(value, bool | int | float)


def check_extras(properties: dict[str, Any], known: frozenset[str]) -> None:
    """Refuse more than 20 extra keys, long names, and values that are not short scalars."""
    extra = [k for k in properties if k not in known]
    if len(extra) > MAX_EXTRA_KEYS:
        raise ValueError(f"at most {MAX_EXTRA_KEYS} extra properties are accepted")
    for key in extra:
        if len(key) > 64:
            raise ValueError(f"property name {key[:64]!r}... is longer than 64 characters")
        if not _scalar(properties[key]):
            raise ValueError(
                f"extra property {key!r} must be null, a boolean, a number "
                "or a string of at most 256 characters"
            )


def _bounded_extras(known: frozenset[str]) -> AfterValidator:
    """:func:`check_extras` as a validator of the properties of an open type."""

    def check(properties: Any) -> Any:
        check_extras(properties, known)
        return properties

    return AfterValidator(check)


class PageViewProperties(TypedDict):
    """A page was shown (extra scalar keys allowed)."""

    __pydantic_config__ = _OPEN  # type: ignore[misc]
    url: NotRequired[Url | None]
    referrer: NotRequired[Url | None]
    title: NotRequired[Annotated[str, Field(max_length=256)] | None]


class ProductViewProperties(TypedDict):
    """A product page was shown."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    sku: Sku
    category: NotRequired[Category | None]


class SearchProperties(TypedDict):
    """A search was run."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    query: Annotated[str, Field(min_length=1, max_length=256)]
    results_count: NotRequired[Annotated[StrictInt, Field(ge=0, le=10**9)] | None]


class CartProperties(TypedDict):
    """Units of one SKU put into or taken out of the cart."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    sku: Sku
    quantity: Quantity
    unit_price_minor: NotRequired[Money | None]
    category: NotRequired[Category | None]


class CheckoutStartedProperties(TypedDict):
    """Checkout began with the cart's value and content."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    cart_value_minor: NotRequired[Annotated[StrictInt, Field(ge=0, le=10**15)] | None]
    currency: NotRequired[Currency | None]
    skus: NotRequired[Annotated[list[Sku], Field(max_length=500)] | None]


class ReviewSubmittedProperties(TypedDict):
    """A product review with a 1-5 star rating."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    sku: Sku
    rating: Annotated[StrictInt, Field(ge=1, le=5)]
    text: NotRequired[Text | None]


class ReferralConvertedProperties(TypedDict):
    """A friend this customer referred signed up or bought: the code or link and the channel
    it went through (never who the friend is: that is the friend's own data)."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    referral_code: NotRequired[Label | None]
    channel: NotRequired[Label | None]


class ComplaintFiledProperties(TypedDict):
    """A complaint, about an order or in general."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    topic: Label
    order_external_id: NotRequired[ExternalId | None]
    text: NotRequired[Text | None]


class AppOpenProperties(TypedDict):
    """The shop's app came to the foreground (extra scalar keys allowed)."""

    __pydantic_config__ = _OPEN  # type: ignore[misc]
    app_version: NotRequired[Short | None]
    platform: NotRequired[Short | None]


class SignInProperties(TypedDict):
    """The customer signed in."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    method: NotRequired[Short | None]


class RecommendationClickedProperties(TypedDict):
    """A recommended item was clicked (feeds the recommend service's click-through figures)."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    sku: Sku
    placement: NotRequired[Label | None]
    strategy: NotRequired[Label | None]
    experiment: NotRequired[Label | None]
    variant: NotRequired[Label | None]
    position: NotRequired[Annotated[StrictInt, Field(ge=0, le=10_000)] | None]


class _Event(TypedDict):
    """Fields every event has; ``type`` selects the properties model."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    event_id: Token
    customer_external_id: NotRequired[ExternalId | None]
    anonymous_id: NotRequired[Token | None]
    occurred_at: AwareDatetime


class PageView(_Event):
    """A ``page_view`` event."""

    type: Literal["page_view"]
    properties: NotRequired[
        Annotated[
            PageViewProperties, _bounded_extras(frozenset(PageViewProperties.__annotations__))
        ]
    ]


class ProductView(_Event):
    """A ``product_view`` event."""

    type: Literal["product_view"]
    properties: ProductViewProperties


class Search(_Event):
    """A ``search`` event."""

    type: Literal["search"]
    properties: SearchProperties


class AddToCart(_Event):
    """An ``add_to_cart`` event."""

    type: Literal["add_to_cart"]
    properties: CartProperties


class RemoveFromCart(_Event):
    """A ``remove_from_cart`` event."""

    type: Literal["remove_from_cart"]
    properties: CartProperties


class CheckoutStarted(_Event):
    """A ``checkout_started`` event."""

    type: Literal["checkout_started"]
    properties: NotRequired[CheckoutStartedProperties]


class ReviewSubmitted(_Event):
    """A ``review_submitted`` event."""

    type: Literal["review_submitted"]
    properties: ReviewSubmittedProperties


class ReferralConverted(_Event):
    """A ``referral_converted`` event."""

    type: Literal["referral_converted"]
    properties: NotRequired[ReferralConvertedProperties]


class ComplaintFiled(_Event):
    """A ``complaint_filed`` event."""

    type: Literal["complaint_filed"]
    properties: ComplaintFiledProperties


class AppOpen(_Event):
    """An ``app_open`` event."""

    type: Literal["app_open"]
    properties: NotRequired[
        Annotated[AppOpenProperties, _bounded_extras(frozenset(AppOpenProperties.__annotations__))]
    ]


class SignIn(_Event):
    """A ``sign_in`` event."""

    type: Literal["sign_in"]
    properties: NotRequired[SignInProperties]


class RecommendationClicked(_Event):
    """A ``recommendation_clicked`` event."""

    type: Literal["recommendation_clicked"]
    properties: RecommendationClickedProperties


AnyEvent = (
    PageView
    | ProductView
    | Search
    | AddToCart
    | RemoveFromCart
    | CheckoutStarted
    | ReviewSubmitted
    | ReferralConverted
    | ComplaintFiled
    | AppOpen
    | SignIn
    | RecommendationClicked
)
Event = Annotated[AnyEvent, Field(discriminator="type")]
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


class EventBatch(TypedDict):
    """The request body: 1 to 1,000 events."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_EVENTS)]


class RawBatch(BaseModel):
    """The request body with items left unparsed, so one bad item cannot fail the others."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[Any], Field(min_length=1, max_length=MAX_EVENTS)]


class RejectedEvent(BaseModel):
    """An event of the batch that was not stored, by its position in ``events``."""

    index: int
    event_id: str | None = None
    errors: list[FieldError] = Field(
        description="each field refused (named relative to the event: properties.sku) and why"
    )


class BatchResult(BaseModel):
    """What happened to a batch: stored, already known, refused."""

    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(
        description="valid events not stored again: their event_id was stored before "
        "or appears earlier in the same batch"
    )
    rejected: list[RejectedEvent]
