"""Parts of GDPR exports contributed by other services (``crm.<svc>.export.contributed``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Handler, PoisonMessage, Subscription
from crm_profile.gdpr.service import store_part


class ExportContributed(BaseModel):
    """The fields profile reads of any service's contribution (the same shape for all)."""

    export_id: uuid.UUID
    service: str
    data: dict[str, Any]


def contribution_handler(service: str) -> Handler:
    """Handler of ``crm.<service>.export.contributed``: keeps the part in its export job."""

    async def handle(session: AsyncSession, envelope: Envelope) -> None:
        part = ExportContributed.model_validate(envelope.data)
        if part.service != service:  # a service contributes only its own part
            raise PoisonMessage(f"{service} sent a part named {part.service!r}")
        await store_part(session, part.export_id, service, part.data)

    return handle


def export_subscriptions(services: Iterable[str]) -> list[Subscription]:
    """One durable consumer per contributing service (``profile-<svc>-exports``)."""
    return [
        Subscription(
            subject=f"crm.{service}.export.contributed",
            durable=f"profile-{service}-exports",
            handler=contribution_handler(service),
        )
        for service in services
    ]
