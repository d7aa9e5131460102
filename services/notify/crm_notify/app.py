"""The notify API process."""

from fastapi import FastAPI

from crm_common.app import create_service_app, run_api
from crm_common.deadletters import dead_letter_router
from crm_notify.config import Settings, settings
from crm_notify.consumers import SUBSCRIPTIONS
from crm_notify.models import dead_letter_table, inbox_table

DESCRIPTION = "Templates, channels, campaigns to segments, triggered journeys, consent and frequency rules, tracking and attribution."


def create_app(app_settings: Settings | None = None) -> FastAPI:
    """Build the notify API."""
    routers = [dead_letter_router("notify", dead_letter_table, inbox_table, SUBSCRIPTIONS)]
    return create_service_app(
        settings=app_settings or settings,
        title="CRM notify service",
        description=DESCRIPTION,
        routers=routers,
    )


def main() -> None:
    """Entry point ``crm-notify-api``."""
    run_api(create_app(), settings)


if __name__ == "__main__":
    main()
