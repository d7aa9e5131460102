"""Test support: the pytest plugin (``-p crm_common.testing.plugin``) and its helpers."""

from crm_common.testing.runtime import TestRuntime, asgi_client, mint_customer_token

__all__ = ["TestRuntime", "asgi_client", "mint_customer_token"]
