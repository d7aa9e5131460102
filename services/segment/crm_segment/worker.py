"""The segment worker process: outbox relay and consumers."""

from crm_common.worker import WorkerSpec, serve_worker
from crm_segment.config import settings
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.models import dead_letter_table, inbox_table, outbox_table

SPEC = WorkerSpec(
    service="segment",
    outbox=outbox_table,
    inbox=inbox_table,
    dead_letter=dead_letter_table,
    subscriptions=SUBSCRIPTIONS,
)


def main() -> None:
    """Entry point ``crm-segment-worker``."""
    serve_worker(SPEC, settings)


if __name__ == "__main__":
    main()
