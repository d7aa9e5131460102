"""``/v1/orders``: order intake, status changes, refunds; a customer's orders."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import CrmError, Problem, error_responses
from crm_profile.customers.dependencies import ValidCustomer
from crm_profile.customers.errors import CustomerNotFound
from crm_profile.customers.schemas import ExternalId
from crm_profile.orders import service
from crm_profile.orders.errors import (
    IdempotencyKeyReused,
    IllegalStatusTransition,
    OrderConflict,
    OrderNotFound,
    RefundExceedsPaid,
    RefundExceedsUnits,
)
from crm_profile.orders.schemas import (
    OrderCreate,
    OrderPage,
    OrderRead,
    RefundCreate,
    RefundRead,
    StatusChange,
)

router = APIRouter(prefix="/v1", tags=["orders"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:write"))]
OrderIdPath = Annotated[ExternalId, Path(description="The shop's own order id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeating a request with the same key returns the first result",
    ),
]
REPLAYED = "Idempotent-Replayed"


def _status(response: Response, created: bool) -> None:
    """201 for a new resource; 200 and ``Idempotent-Replayed: true`` for a repeat."""
    response.status_code = 201 if created else 200
    if not created:
        response.headers[REPLAYED] = "true"


def _conflicts(*errors: type[CrmError]) -> dict[int | str, dict[str, Any]]:
    """One 409 entry listing every conflict the route can answer with."""
    titles = "; ".join(f"{e.title} ({e.slug})" for e in errors)
    return {409: {"model": Problem, "description": titles}}


def _replay_doc(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "description": "A repeat: the resource made the first time"}}


@router.post(
    "/orders",
    response_model=OrderRead,
    status_code=201,
    summary="Record an order",
    responses={
        **error_responses(),
        **_conflicts(OrderConflict, IdempotencyKeyReused),
        **_replay_doc(OrderRead),
    },
)
async def place_order(
    body: OrderCreate,
    session: SessionDep,
    principal: Writer,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderRead:
    """201 with the order; a repeat of the same order (same ``external_id`` and content, or the
    same ``Idempotency-Key`` and body) is 200 with the order as it is now and publishes nothing."""
    order, created = await service.place(session, body, idempotency_key)
    _status(response, created)
    return order


@router.get(
    "/orders/{external_id}",
    response_model=OrderRead,
    summary="Read an order",
    responses=error_responses(OrderNotFound),
)
async def get_order(external_id: OrderIdPath, session: SessionDep, principal: Reader) -> OrderRead:
    """The order with its lines, refunded units and status history."""
    return await service.view(session, await service.get(session, external_id))


@router.post(
    "/orders/{external_id}/status",
    response_model=OrderRead,
    summary="Change an order's status",
    responses=error_responses(OrderNotFound, IllegalStatusTransition),
)
async def change_status(
    external_id: OrderIdPath, body: StatusChange, session: SessionDep, principal: Writer
) -> OrderRead:
    """placed → paid → shipped → delivered; cancelled from placed or paid. Sending the current
    status again changes nothing and publishes nothing."""
    order, _ = await service.change_status(session, external_id, body)
    return order


@router.post(
    "/orders/{external_id}/refunds",
    response_model=RefundRead,
    status_code=201,
    summary="Refund lines or an amount of an order",
    responses={
        **error_responses(OrderNotFound),
        **_conflicts(RefundExceedsPaid, RefundExceedsUnits, IdempotencyKeyReused),
        **_replay_doc(RefundRead),
    },
)
async def refund_order(
    external_id: OrderIdPath,
    body: RefundCreate,
    session: SessionDep,
    principal: Writer,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RefundRead:
    """Never more than is left of what was paid, nor more units than were bought."""
    refund, created = await service.refund(session, external_id, body, idempotency_key)
    _status(response, created)
    return refund


@router.get(
    "/customers/{external_id}/orders",
    response_model=OrderPage,
    summary="List a customer's orders",
    responses=error_responses(CustomerNotFound),
)
async def list_customer_orders(
    principal: Reader,  # first: credentials are checked before the customer is looked up
    customer: ValidCustomer,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OrderPage:
    """Orders of the customer and of every duplicate merged into it, newest first."""
    return await service.list_for_customer(session, customer, cursor=cursor, limit=limit)
