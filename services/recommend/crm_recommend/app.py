"""The recommend API process."""

from fastapi import FastAPI

from crm_common.app import create_service_app, run_api
from crm_common.deadletters import dead_letter_router
from crm_recommend.config import Settings, settings
from crm_recommend.consumers import SUBSCRIPTIONS
from crm_recommend.models import dead_letter_table, inbox_table

DESCRIPTION = "Catalogue, interactions, recommendation models, low-latency serving, A/B experiments and offline evaluation."


def create_app(app_settings: Settings | None = None) -> FastAPI:
    """Build the recommend API."""
    routers = [dead_letter_router("recommend", dead_letter_table, inbox_table, SUBSCRIPTIONS)]
    return create_service_app(
        settings=app_settings or settings,
        title="CRM recommend service",
        description=DESCRIPTION,
        routers=routers,
    )


def main() -> None:
    """Entry point ``crm-recommend-api``."""
    run_api(create_app(), settings)


if __name__ == "__main__":
    main()
