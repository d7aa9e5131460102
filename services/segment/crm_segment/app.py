"""The segment API process."""

from fastapi import FastAPI

from crm_common.app import create_service_app, run_api
from crm_common.deadletters import dead_letter_router
from crm_segment.config import Settings, settings
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.models import dead_letter_table, inbox_table

DESCRIPTION = "Customer aggregates, RFM scores and groups, lifecycle, rule segments, clusters, churn risk and predicted CLV."


def create_app(app_settings: Settings | None = None) -> FastAPI:
    """Build the segment API."""
    routers = [dead_letter_router("segment", dead_letter_table, inbox_table, SUBSCRIPTIONS)]
    return create_service_app(
        settings=app_settings or settings,
        title="CRM segment service",
        description=DESCRIPTION,
        routers=routers,
    )


def main() -> None:
    """Entry point ``crm-segment-api``."""
    run_api(create_app(), settings)


if __name__ == "__main__":
    main()
