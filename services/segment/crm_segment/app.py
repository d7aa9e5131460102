"""The segment API process."""

from fastapi import FastAPI

from crm_common.app import create_service_app, run_api
from crm_common.deadletters import dead_letter_router
from crm_segment.clusters.endpoints import router as clusters_router
from crm_segment.clv.endpoints import router as clv_router
from crm_segment.config import Settings, settings
from crm_segment.consumers import SUBSCRIPTIONS
from crm_segment.jobs.endpoints import router as jobs_router
from crm_segment.kpis.endpoints import router as kpis_router
from crm_segment.models import dead_letter_table, inbox_table
from crm_segment.rfm.endpoints import router as rfm_router
from crm_segment.scores.endpoints import router as scores_router
from crm_segment.segments.endpoints import router as segments_router
from crm_segment.tags.endpoints import router as tags_router

DESCRIPTION = "Customer aggregates, RFM scores and groups, lifecycle, rule segments, clusters, churn risk and predicted CLV."


def create_app(app_settings: Settings | None = None) -> FastAPI:
    """Build the segment API."""
    routers = [
        segments_router,
        scores_router,
        rfm_router,
        clv_router,
        clusters_router,
        tags_router,
        kpis_router,
        jobs_router,
        dead_letter_router("segment", dead_letter_table, inbox_table, SUBSCRIPTIONS),
    ]
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
