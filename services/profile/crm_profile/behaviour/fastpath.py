"""The intake's fast path: a whole batch decoded and validated by msgspec in one C pass.

These structs restate the rules of ``schemas.py`` (the pydantic models stay the reference: they
document the body in OpenAPI and produce every error message). A batch that msgspec accepts
whole is stored from these structs directly; anything else, a single bad event included, is
parsed again by pydantic (``service.parse``), whose valid events are then turned into the same
structs (:func:`from_validated`), so a batch's answer does not depend on the path it took.

The fast path may refuse more than pydantic does (that only costs the slow path), never less,
and must read every value as pydantic does. Hence:

* patterns end in ``\\Z``: Python's ``$`` also matches before a final newline. The patterns of
  the fields every event has are checked once per batch, over the batch's values joined
  (:func:`_identifiers_ok`): msgspec runs a pattern through ``re`` once per value, which
  tripled the decoding time;
* ``occurred_at`` is taken as a string of one strict RFC 3339 form (at most 6 fraction digits:
  msgspec rounds a 7th digit where pydantic truncates it) and read by ``datetime.fromisoformat``;
  every other form pydantic knows (``"2026-11-23T10:00Z"``, Unix timestamps...) takes the slow
  path;
* integers are strict in both (``2.0``, ``"2"`` and ``true`` are refused); a number too large for
  a float is refused here and left to pydantic.

``tests/profile/behaviour/test_fastpath.py`` checks both paths against each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from crm_profile.behaviour.schemas import MAX_EVENTS, check_extras

#: Also ``[!-~]+`` and ``[A-Za-z0-9._:@-]+`` when an event's field: see :func:`_identifiers_ok`.
Token = Annotated[str, Meta(min_length=1, max_length=128)]
ExternalIdField = Annotated[str, Meta(min_length=1, max_length=128)]
ExternalId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@\-]+\Z")]
Sku = Annotated[str, Meta(min_length=1, max_length=64)]
Category = Annotated[str, Meta(min_length=1, max_length=128)]
Url = Annotated[str, Meta(min_length=1, max_length=2048)]
Label = Annotated[str, Meta(min_length=1, max_length=64)]
Short = Annotated[str, Meta(min_length=1, max_length=32)]
Text = Annotated[str, Meta(min_length=1, max_length=5000)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}\Z")]
Quantity = Annotated[int, Meta(ge=1, le=100_000)]
Money = Annotated[int, Meta(ge=0, le=10**12)]
#: Each ``occurred_at`` of the batch followed by ``\n``: ``2026-11-23T10:15:00Z``,
#: ``2026-11-23T10:15:00.123+01:00`` (the form senders use).
_TIMES = re.compile(
    r"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)\n)*", re.ASCII
)
#: The customer ids of the batch, joined.
_EXTERNAL_IDS = re.compile(r"[A-Za-z0-9._:@\-]*")


class _Closed(Struct, forbid_unknown_fields=True, gc=False):
    """Properties that refuse unknown keys; a key not sent stays ``UNSET`` (and unstored)."""


class ProductViewProperties(_Closed):
    sku: Sku
    category: Category | None | UnsetType = UNSET


class SearchProperties(_Closed):
    query: Annotated[str, Meta(min_length=1, max_length=256)]
    results_count: Annotated[int, Meta(ge=0, le=10**9)] | None | UnsetType = UNSET


class CartProperties(_Closed):
    sku: Sku
    quantity: Quantity
    unit_price_minor: Money | None | UnsetType = UNSET
    category: Category | None | UnsetType = UNSET


class CheckoutStartedProperties(_Closed):
    cart_value_minor: Annotated[int, Meta(ge=0, le=10**15)] | None | UnsetType = UNSET
    currency: Currency | None | UnsetType = UNSET
    skus: Annotated[list[Sku], Meta(max_length=500)] | None | UnsetType = UNSET


class ReviewSubmittedProperties(_Closed):
    sku: Sku
    rating: Annotated[int, Meta(ge=1, le=5)]
    text: Text | None | UnsetType = UNSET


class ReferralConvertedProperties(_Closed):
    referral_code: Label | None | UnsetType = UNSET
    channel: Label | None | UnsetType = UNSET


class ComplaintFiledProperties(_Closed):
    topic: Label
    order_external_id: ExternalId | None | UnsetType = UNSET
    text: Text | None | UnsetType = UNSET


class SignInProperties(_Closed):
    method: Short | None | UnsetType = UNSET


class RecommendationClickedProperties(_Closed):
    sku: Sku
    placement: Label | None | UnsetType = UNSET
    strategy: Label | None | UnsetType = UNSET
    experiment: Label | None | UnsetType = UNSET
    variant: Label | None | UnsetType = UNSET
    position: Annotated[int, Meta(ge=0, le=10_000)] | None | UnsetType = UNSET


class PageViewKnown(Struct, gc=False):
    """The known keys of ``page_view`` properties (extras are checked by ``check_extras``)."""

    url: Url | None = None
    referrer: Url | None = None
    title: Annotated[str, Meta(max_length=256)] | None = None


class AppOpenKnown(Struct, gc=False):
    """The known keys of ``app_open`` properties."""

    app_version: Short | None = None
    platform: Short | None = None


class Event(Struct, forbid_unknown_fields=True, tag_field="type", kw_only=True, gc=False):
    """Fields every event has; each subclass is one ``type`` and its ``properties``."""

    #: For the open types: the struct checking the known keys, and those keys.
    open_known: ClassVar[type[Struct] | None] = None
    known: ClassVar[frozenset[str]] = frozenset()

    event_id: Token
    occurred_at: str
    customer_external_id: ExternalIdField | None = None
    anonymous_id: Token | None = None
    properties: Any = UNSET


class PageView(Event, tag="page_view"):
    open_known = PageViewKnown
    known = frozenset(PageViewKnown.__struct_fields__)
    properties: dict[str, Any] | UnsetType = UNSET


class ProductView(Event, tag="product_view"):
    properties: ProductViewProperties


class Search(Event, tag="search"):
    properties: SearchProperties


class AddToCart(Event, tag="add_to_cart"):
    properties: CartProperties


class RemoveFromCart(Event, tag="remove_from_cart"):
    properties: CartProperties


class CheckoutStarted(Event, tag="checkout_started"):
    properties: CheckoutStartedProperties | UnsetType = UNSET


class ReviewSubmitted(Event, tag="review_submitted"):
    properties: ReviewSubmittedProperties


class ReferralConverted(Event, tag="referral_converted"):
    properties: ReferralConvertedProperties | UnsetType = UNSET


class ComplaintFiled(Event, tag="complaint_filed"):
    properties: ComplaintFiledProperties


class AppOpen(Event, tag="app_open"):
    open_known = AppOpenKnown
    known = frozenset(AppOpenKnown.__struct_fields__)
    properties: dict[str, Any] | UnsetType = UNSET


class SignIn(Event, tag="sign_in"):
    properties: SignInProperties | UnsetType = UNSET


class RecommendationClicked(Event, tag="recommendation_clicked"):
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
BY_TYPE: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        PageView,
        ProductView,
        Search,
        AddToCart,
        RemoveFromCart,
        CheckoutStarted,
        ReviewSubmitted,
        ReferralConverted,
        ComplaintFiled,
        AppOpen,
        SignIn,
        RecommendationClicked,
    )
}


class Batch(Struct, forbid_unknown_fields=True, gc=False):
    """The request body."""

    events: Annotated[list[AnyEvent], Meta(min_length=1, max_length=MAX_EVENTS)]


_DECODER = msgspec.json.Decoder(Batch)


def decode(body: bytes) -> list[tuple[Event, datetime]] | None:
    """Every event of ``body`` with its time, or ``None`` unless the whole batch is valid."""
    try:
        events: Sequence[Event] = _DECODER.decode(body).events
        if not _identifiers_ok(events):
            return None
        out = [(event, datetime.fromisoformat(event.occurred_at)) for event in events]
        for event in events:
            if event.open_known is not None and event.properties is not UNSET:
                msgspec.convert(event.properties, event.open_known)
                check_extras(event.properties, event.known)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # RecursionError: nested too deep
        return None
    return out


def _identifiers_ok(events: Sequence[Event]) -> bool:
    """The patterns of ``event_id``, ``anonymous_id``, ``customer_external_id``, ``occurred_at``.

    Checked over the batch's values joined, which is exact because every value is non-empty
    (``min_length``) and the joined text matches the pattern only if each part does.
    """
    tokens = "".join(
        [e.event_id for e in events]
        + [e.anonymous_id for e in events if e.anonymous_id is not None]
    )
    if not (tokens.isascii() and tokens.isprintable()) or " " in tokens:  # [!-~]+
        return False
    external = "".join([x for e in events if (x := e.customer_external_id) is not None])
    if _EXTERNAL_IDS.fullmatch(external) is None:
        return False
    times = "\n".join([e.occurred_at for e in events])
    return _TIMES.fullmatch(times + "\n") is not None


def from_validated(item: dict[str, Any]) -> tuple[Event, datetime]:
    """The struct of an event pydantic validated (the slow path), built without checks."""
    cls = BY_TYPE[item["type"]]
    properties = item.get("properties", UNSET)
    if properties is not UNSET and cls.open_known is None:
        properties = _PROPERTIES[cls](**properties)
    occurred_at: datetime = item["occurred_at"]
    event = cls(
        event_id=item["event_id"],
        occurred_at=occurred_at.isoformat(),
        customer_external_id=item.get("customer_external_id"),
        anonymous_id=item.get("anonymous_id"),
        properties=properties,
    )
    return event, occurred_at


_PROPERTIES: dict[type[Event], type[Struct]] = {
    ProductView: ProductViewProperties,
    Search: SearchProperties,
    AddToCart: CartProperties,
    RemoveFromCart: CartProperties,
    CheckoutStarted: CheckoutStartedProperties,
    ReviewSubmitted: ReviewSubmittedProperties,
    ReferralConverted: ReferralConvertedProperties,
    ComplaintFiled: ComplaintFiledProperties,
    SignIn: SignInProperties,
    RecommendationClicked: RecommendationClickedProperties,
}
