"""A worker killed in the middle of the queue: every membership change is published once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_common.db import Database
from crm_common.testing import TestRuntime
from crm_segment.evaluation import queue
from crm_segment.models import EvaluationQueue, Segment
from tests.segment.evaluation.conftest import Committed
from tests.segment.evaluation.factories import customer, membership_events, segment, token

GERMANS = {"field": "country", "op": "eq", "value": "DE"}

ROOT = Path(__file__).resolve().parents[3]
CUSTOMERS = 50
BATCH = 10


def _child(runtime: TestRuntime, marker: Path, hang_in_batch: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SEGMENT_EVALUATION_BATCH_SIZE": str(BATCH)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.segment.evaluation._children",
            runtime.database_url,
            str(marker),
            str(hang_in_batch),
        ],
        cwd=ROOT,
        env=env,
    )


def _reported(marker: Path) -> str | None:
    return marker.read_text() if marker.exists() else None


async def _wait_for(child: subprocess.Popen[bytes], marker: Path, text: str) -> None:
    deadline = time.monotonic() + 60
    while _reported(marker) != text:
        assert child.poll() is None, "child exited early"
        assert time.monotonic() < deadline, f"child never reported {text!r}"
        await asyncio.sleep(0.05)


class TestWorkerCrash:
    @pytest.mark.slow
    async def test_killed_mid_batch_then_restarted_publishes_each_entry_once(
        self, database: Database, committed: Committed, crm_runtime: TestRuntime, tmp_path: Path
    ):
        ids = [f"k{i:02d}-{token()}" for i in range(CUSTOMERS)]
        committed.customers.extend(ids)
        async with database.unit_of_work() as session:
            for i in ids:
                await customer(session, i)
            seg = await segment(session, GERMANS)
            committed.segments.append(seg.id)
            await queue.enqueue(session, ids)

        marker = tmp_path / "first"
        child = _child(crm_runtime, marker, hang_in_batch=3)
        try:
            await _wait_for(child, marker, "reached")
            os.kill(child.pid, signal.SIGKILL)  # batch 3 written, never committed
        finally:
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        first = await membership_events(database, seg.id)
        assert len(first) == 2 * BATCH  # two committed batches, the third rolled back
        async with database.unit_of_work() as session:
            waiting = select(func.count()).where(EvaluationQueue.customer_external_id.in_(ids))
            assert (await session.execute(waiting)).scalar_one() == CUSTOMERS - 2 * BATCH

        marker = tmp_path / "second"
        child = _child(crm_runtime, marker, hang_in_batch=0)
        try:
            await _wait_for(child, marker, "done")
        finally:
            child.wait(30)
        assert child.returncode == 0

        events = await membership_events(database, seg.id)
        assert events[: len(first)] == first
        assert Counter(events) == Counter((i, "entered") for i in ids)  # each exactly once
        async with database.unit_of_work() as session:
            assert (await session.execute(waiting)).scalar_one() == 0
            count = select(Segment.members_count).where(Segment.id == seg.id)
            assert (await session.execute(count)).scalar_one() == CUSTOMERS
