"""Which function runs which kind of job.

A handler takes the job's session (its own transaction, committed when the handler returns)
and the job's ``params`` and returns the JSON ``result`` stored on the job. Handlers are named
by import path and imported when first run, so the API process never loads numpy or
scikit-learn.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

Handler = Callable[[AsyncSession, dict[str, Any]], Awaitable[dict[str, Any]]]

#: kind -> "module:function"
HANDLERS: dict[str, str] = {
    "rfm": "crm_segment.rfm.jobs:run_rfm",
    "clv_fit": "crm_segment.clv.jobs:run_fit",
    "clusters": "crm_segment.clusters.jobs:run_clusters",
}


def handler(kind: str) -> Handler:
    """The handler of ``kind`` (``KeyError`` for an unknown kind)."""
    module, _, name = HANDLERS[kind].partition(":")
    found: Handler = getattr(importlib.import_module(module), name)
    return found
