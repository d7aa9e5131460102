"""The recommend worker process: outbox relay and consumers."""

from crm_common.worker import WorkerSpec, serve_worker
from crm_recommend.config import settings
from crm_recommend.consumers import SUBSCRIPTIONS
from crm_recommend.models import dead_letter_table, inbox_table, outbox_table

SPEC = WorkerSpec(
    service="recommend",
    outbox=outbox_table,
    inbox=inbox_table,
    dead_letter=dead_letter_table,
    subscriptions=SUBSCRIPTIONS,
)


def main() -> None:
    """Entry point ``crm-recommend-worker``."""
    serve_worker(SPEC, settings)


if __name__ == "__main__":
    main()
