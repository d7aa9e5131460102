"""Path dependencies of the customers API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from crm_common.db import SessionDep
from crm_profile.customers.schemas import ExternalId
from crm_profile.customers.service import resolve
from crm_profile.models import Customer

ExternalIdPath = Annotated[ExternalId, Path(description="The shop's own customer id")]


async def valid_customer(external_id: ExternalIdPath, session: SessionDep) -> Customer:
    """The customer named in the path (its survivor when it was merged); 404 otherwise."""
    return await resolve(session, external_id)


ValidCustomer = Annotated[Customer, Depends(valid_customer)]
