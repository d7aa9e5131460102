"""A segment evaluator child process for the crash test.

``python -m tests.segment.evaluation._children <db> <marker> <hang_in_batch>``: runs
``process_queue`` once (batches of ``SEGMENT_EVALUATION_BATCH_SIZE``). With
``hang_in_batch`` = n >= 1 it blocks inside the n-th batch, after the batch's membership
changes and events were written but before its commit (the test SIGKILLs it there); with 0
it drains the queue and writes ``done`` to the marker.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from crm_common.db import Database
from crm_segment.evaluation import worker
from crm_segment.evaluation.repository import EvaluationRepository
from crm_segment.lifecycle.stages import LifecycleRules


def _report(marker: Path, text: str) -> None:
    marker.write_text(text)


async def run(db_url: str, marker: Path, hang_in_batch: int) -> None:
    """Process the queue, hanging in batch ``hang_in_batch`` when it is positive."""
    worker._builtins_ready = True  # the test's segment only
    if hang_in_batch > 0:
        real_schedule = EvaluationRepository.schedule
        batches = 0

        async def schedule_or_hang(
            self: EvaluationRepository,
            ids: Sequence[str],
            windows: Iterable[tuple[str, int]],
            now: datetime,
            lifecycle: LifecycleRules | None = None,
        ) -> int:
            nonlocal batches
            batches += 1
            if batches == hang_in_batch:
                _report(marker, "reached")
                time.sleep(3600)  # blocks the process, its transaction open: SIGKILL here
            return await real_schedule(self, ids, windows, now, lifecycle)

        EvaluationRepository.schedule = schedule_or_hang  # type: ignore[method-assign]
    database = Database.from_engine(create_async_engine(db_url))
    await worker.process_queue(database)
    await database.dispose()
    _report(marker, "done")


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
