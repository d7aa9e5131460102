"""The evaluator's worker loops: due customers from the queue, and the periodic full refresh."""

from __future__ import annotations

from crm_common.db import Database


async def process_queue(database: Database) -> None:
    """Take due customers from the queue in batches, refresh their scores, re-evaluate their
    segments, publish entries/exits, schedule their next time-relative change."""
    del database


async def refresh_all_if_due(database: Database) -> None:
    """Safety net: re-evaluate every segment for every customer when the last full refresh is
    older than the configured interval; report the drift it corrected."""
    del database
