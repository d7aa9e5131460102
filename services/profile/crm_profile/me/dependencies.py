"""The customer behind a customer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from crm_common.auth import CurrentCustomer
from crm_common.db import SessionDep
from crm_profile.customers.errors import CustomerMerged, CustomerNotFound
from crm_profile.customers.repository import CustomerRepository
from crm_profile.models import Customer


async def current_me(principal: CurrentCustomer, session: SessionDep) -> Customer:
    """The customer whose external id is the token's ``sub``; never another one.

    Merges are not followed: a token for a merged duplicate gets a 409, so a wrong merge (the
    reason merges can be undone) never shows one person another's profile.
    """
    customer = await CustomerRepository(session).by_external_id(principal.external_id)
    if customer is None or customer.status == "erased":
        raise CustomerNotFound("no customer for this token")
    if customer.merged_into_id is not None:
        raise CustomerMerged(
            "this account was merged into another one; sign in with that account instead"
        )
    return customer


Me = Annotated[Customer, Depends(current_me)]
