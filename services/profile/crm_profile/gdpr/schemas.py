"""Request and response models of the GDPR API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ExportJobRead(BaseModel):
    """An export job: which parts it waits for and which are in."""

    id: uuid.UUID
    status: Literal["collecting", "done"]
    expected_parts: list[str] = Field(description="profile, then every contributing service")
    received_parts: list[str]
    missing_parts: list[str] = Field(description="Expected parts that have not arrived yet")
    overdue: bool = Field(
        description="Still collecting after PROFILE_EXPORT_OVERDUE_SECONDS: a contributing "
        "service is down or lagging (the parts named in missing_parts)"
    )
    requested_at: datetime
    completed_at: datetime | None


class ExportRead(ExportJobRead):
    """An export job and, once every part is in, its document."""

    document: dict[str, Any] | None = Field(
        description="One key per part (profile, segment, ...); null until status is done"
    )
