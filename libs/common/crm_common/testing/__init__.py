"""Test support: the pytest plugin (``-p crm_common.testing.plugin``) and its helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crm_common.testing.runtime import TestRuntime, asgi_client, mint_customer_token

__all__ = ["TestRuntime", "asgi_client", "mint_customer_token"]


def __getattr__(name: str) -> Any:
    """Import the helpers on first use: ``-p`` loads the plugin before coverage starts, so
    importing them eagerly would import the code under test unmeasured."""
    if name in __all__:
        from crm_common.testing import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
