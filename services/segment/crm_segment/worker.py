"""The segment worker process: outbox relay, consumers, the re-evaluation loop and batch jobs."""

from crm_common.worker import PeriodicJob, WorkerSpec, serve_worker
from crm_segment.config import settings
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.evaluation.worker import process_queue, refresh_all_if_due
from crm_segment.jobs.service import run_queued
from crm_segment.models import dead_letter_table, inbox_table, outbox_table
from crm_segment.scheduling import schedule_due_jobs

SPEC = WorkerSpec(
    service="segment",
    outbox=outbox_table,
    inbox=inbox_table,
    dead_letter=dead_letter_table,
    subscriptions=SUBSCRIPTIONS,
    jobs=[
        PeriodicJob("segment-evaluation", settings.evaluation_interval_seconds, process_queue),
        PeriodicJob("segment-full-refresh", 60.0, refresh_all_if_due),
        PeriodicJob("segment-jobs", settings.jobs_poll_seconds, run_queued),
        PeriodicJob("segment-schedule", 60.0, schedule_due_jobs),
    ],
)


def main() -> None:
    """Entry point ``crm-segment-worker``."""
    serve_worker(SPEC, settings)


if __name__ == "__main__":
    main()
