"""The profile API process."""

from fastapi import FastAPI

from crm_common.app import create_service_app, run_api
from crm_common.deadletters import dead_letter_router
from crm_profile.config import Settings, settings
from crm_profile.consumers import SUBSCRIPTIONS
from crm_profile.models import dead_letter_table, inbox_table

DESCRIPTION = "Customers, identities and merging, consent, tags, behaviour and order intake, timeline, GDPR export and erasure."


def create_app(app_settings: Settings | None = None) -> FastAPI:
    """Build the profile API."""
    routers = [dead_letter_router("profile", dead_letter_table, inbox_table, SUBSCRIPTIONS)]
    return create_service_app(
        settings=app_settings or settings,
        title="CRM profile service",
        description=DESCRIPTION,
        routers=routers,
    )


def main() -> None:
    """Entry point ``crm-profile-api``."""
    run_api(create_app(), settings)


if __name__ == "__main__":
    main()
