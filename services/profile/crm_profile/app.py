"""The profile API process."""

import gc

from fastapi import FastAPI

from crm_common.app import create_service_app, run_api
from crm_common.deadletters import dead_letter_router
from crm_profile.behaviour.endpoints import router as behaviour_router
from crm_profile.config import Settings, settings
from crm_profile.consents.endpoints import router as consents_router
from crm_profile.consumers import SUBSCRIPTIONS
from crm_profile.customers.endpoints import router as customers_router
from crm_profile.gdpr.endpoints import router as gdpr_router
from crm_profile.identity.endpoints import router as identity_router
from crm_profile.me.endpoints import router as me_router
from crm_profile.models import dead_letter_table, inbox_table
from crm_profile.orders.endpoints import router as orders_router
from crm_profile.tags.endpoints import router as tags_router
from crm_profile.timeline.endpoints import router as timeline_router

DESCRIPTION = (
    "Single customer view: customers and their identities, merging of duplicates, consent, "
    "tags, behaviour and order intake, timeline, GDPR export and erasure."
)


def create_app(app_settings: Settings | None = None) -> FastAPI:
    """Build the profile API."""
    routers = [
        customers_router,
        identity_router,
        consents_router,
        tags_router,
        behaviour_router,
        orders_router,
        timeline_router,
        gdpr_router,
        me_router,
        dead_letter_router("profile", dead_letter_table, inbox_table, SUBSCRIPTIONS),
    ]
    return create_service_app(
        settings=app_settings or settings,
        title="CRM profile service",
        description=DESCRIPTION,
        routers=routers,
    )


def main() -> None:
    """Entry point ``crm-profile-api``."""
    app = create_app()
    # Everything alive now (modules, the app) lives as long as the process: frozen, it is no
    # longer walked by every full collection, which took ~12% of the CPU of a 1,000-event
    # POST /v1/events (bench/README.md).
    gc.collect()
    gc.freeze()
    # A 1,000-event request holds several thousand container objects at once (rows, views):
    # at the default threshold of 700 each one set off 1-2 young collections walking them
    # (~0.17 ms a batch); they are freed by reference counting anyway.
    gc.set_threshold(20_000, *gc.get_threshold()[1:])
    run_api(app, settings)


if __name__ == "__main__":
    main()
