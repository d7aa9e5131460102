"""The loyalty API process."""

from fastapi import FastAPI

from crm_common.app import create_service_app, run_api
from crm_common.deadletters import dead_letter_router
from crm_loyalty.config import Settings, settings
from crm_loyalty.consumers import SUBSCRIPTIONS
from crm_loyalty.models import dead_letter_table, inbox_table

DESCRIPTION = "Points ledger, membership tiers, coupons and paid membership."


def create_app(app_settings: Settings | None = None) -> FastAPI:
    """Build the loyalty API."""
    routers = [dead_letter_router("loyalty", dead_letter_table, inbox_table, SUBSCRIPTIONS)]
    return create_service_app(
        settings=app_settings or settings,
        title="CRM loyalty service",
        description=DESCRIPTION,
        routers=routers,
    )


def main() -> None:
    """Entry point ``crm-loyalty-api``."""
    run_api(create_app(), settings)


if __name__ == "__main__":
    main()
