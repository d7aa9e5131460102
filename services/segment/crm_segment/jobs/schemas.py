"""Job bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class JobRead(BaseModel):
    """A batch job and, once finished, its result."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: Literal["rfm", "clv_fit", "clusters"]
    status: Literal["queued", "running", "succeeded", "failed"]
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
