"""Suite-wide test set-up.

The environment is set before any service module is imported (their settings are read at
import time); the ``crm_common.testing.plugin`` (enabled in pyproject.toml) has already started
PostgreSQL and NATS and exported ``DATABASE_URL`` / ``NATS_URL`` by then.
"""

import os

os.environ.setdefault("CRM_ENV", "test")
os.environ.setdefault("CRM_ADMIN_API_KEY", "dev-admin-key")
os.environ.setdefault("CRM_JWT_SECRET", "dev-jwt-secret")
os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)

ADMIN_HEADERS = {"Authorization": "Bearer dev-admin-key"}
