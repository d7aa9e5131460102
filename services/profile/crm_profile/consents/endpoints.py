"""Consent per channel and purpose: the shop's backend (API key) and the customer (``/v1/me``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.convertors import StringConvertor, register_url_convertor

from crm_common.auth import ApiKeyPrincipal, CurrentCustomer, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import InvalidCursor, error_responses
from crm_profile.consents import service
from crm_profile.consents.schemas import (
    CUSTOMER_SOURCE,
    Channel,
    ConsentDecision,
    ConsentHistoryPage,
    ConsentList,
    ConsentState,
    MyConsentDecision,
    Purpose,
)
from crm_profile.customers.dependencies import ExternalIdPath, ValidCustomer
from crm_profile.customers.errors import CustomerNotFound


class _ChannelSegment(StringConvertor):
    """A path segment other than ``history``.

    ``/consents/history`` (GET) and ``/consents/{channel}`` (PUT) share a shape: without this,
    ``PUT .../consents/history`` would be routed to the decision endpoint and refused as a bad
    channel (422) instead of 405. Any other segment still reaches the endpoint, so an unknown
    channel is a 422 naming ``path.channel``.
    """

    regex = "(?!history$)[^/]+"


register_url_convertor("consent_channel", _ChannelSegment())

#: Full paths: the customer-facing ``/v1/me/consents`` routes live here too.
router = APIRouter(tags=["consents"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:write"))]
ChannelPath = Annotated[Channel, Path(description="email, sms, push or in_app")]
NOT_FOUND = error_responses(CustomerNotFound)


@router.get(
    "/v1/customers/{external_id}/consents",
    response_model=ConsentList,
    summary="Effective consent of a customer",
    responses=NOT_FOUND,
)
async def get_consents(_: Reader, customer: ValidCustomer, session: SessionDep) -> ConsentList:
    """Every channel × purpose: the latest decision across the merge group, or ``unknown``."""
    return ConsentList(items=await service.effective_consents(session, customer))


@router.get(
    "/v1/customers/{external_id}/consents/history",
    response_model=ConsentHistoryPage,
    summary="Every consent decision of a customer",
    responses=error_responses(CustomerNotFound, InvalidCursor),
)
async def get_consent_history(
    _: Reader,
    customer: ValidCustomer,
    session: SessionDep,
    channel: Channel | None = None,
    purpose: Purpose | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConsentHistoryPage:
    """Decisions of the whole merge group, latest ``decided_at`` first, including overridden ones."""
    items, next_cursor = await service.history(
        session, customer, channel=channel, purpose=purpose, cursor=cursor, limit=limit
    )
    return ConsentHistoryPage(items=items, next_cursor=next_cursor)


@router.put(
    "/v1/customers/{external_id}/consents/{channel:consent_channel}",
    response_model=ConsentState,
    summary="Record a consent decision",
    responses=NOT_FOUND,
)
async def put_consent(
    _: Writer,
    external_id: ExternalIdPath,
    channel: ChannelPath,
    body: ConsentDecision,
    session: SessionDep,
) -> ConsentState:
    """Keeps the decision; it wins unless a later-decided one is stored. Returns the effective state."""
    decision = service.from_request(channel, body, body.source)
    return await service.decide(session, external_id, decision)


@router.get(
    "/v1/me/consents",
    response_model=ConsentList,
    summary="My consent",
    tags=["me"],
    responses=NOT_FOUND,
)
async def get_my_consents(principal: CurrentCustomer, session: SessionDep) -> ConsentList:
    """Every channel × purpose for the token's customer."""
    customer = await service.mine(session, principal.external_id)
    return ConsentList(items=await service.effective_consents(session, customer))


@router.get(
    "/v1/me/consents/{channel}",
    response_model=ConsentState,
    summary="My consent for one channel",
    tags=["me"],
    responses=NOT_FOUND,
)
async def get_my_consent(
    channel: ChannelPath,
    principal: CurrentCustomer,
    session: SessionDep,
    purpose: Purpose = "marketing",
) -> ConsentState:
    """The effective decision for ``channel`` and ``purpose`` (default ``marketing``)."""
    customer = await service.mine(session, principal.external_id)
    return await service.effective_consent(session, customer, channel, purpose)


@router.put(
    "/v1/me/consents/{channel}",
    response_model=ConsentState,
    summary="Decide my consent for one channel",
    tags=["me"],
    responses=NOT_FOUND,
)
async def put_my_consent(
    channel: ChannelPath, body: MyConsentDecision, principal: CurrentCustomer, session: SessionDep
) -> ConsentState:
    """Recorded with source ``customer``; same rules as the backend's ``PUT``."""
    decision = service.from_request(channel, body, CUSTOMER_SOURCE)
    return await service.decide(session, principal.external_id, decision)
