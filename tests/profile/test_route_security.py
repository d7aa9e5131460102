"""Every customer route checks credentials before it looks anything up.

Otherwise a caller without a key could learn which customers exist (404 for unknown ids,
401 for known ones).
"""

from __future__ import annotations

import re

import pytest

from crm_common.testing import mint_customer_token
from crm_profile.app import create_app

APP = create_app()
OPEN = {"/healthz", "/readyz", "/metrics"}
ROUTES = sorted(
    (method.upper(), path)
    for path, operations in APP.openapi()["paths"].items()
    if path not in OPEN
    for method in operations
)


def concrete(path: str) -> str:
    """A path with every parameter filled with a plausible value that names nothing."""
    path = path.replace("{channel}", "email")
    return re.sub(
        r"\{[^}]+\}",
        lambda m: (
            "00000000-0000-0000-0000-000000000000"
            if m.group(0).endswith("id}") and "external" not in m.group(0)
            else "nobody-at-all"
        ),
        path,
    )


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_no_credentials_is_401_before_any_lookup(anonymous, method, path):
    response = await anonymous.request(method, concrete(path), json={})
    assert response.status_code == 401, (method, path, response.text)
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if not r[1].startswith("/v1/me")])
async def test_a_customer_token_never_opens_an_api_key_route(anonymous, method, path):
    token = mint_customer_token("nobody-at-all")
    response = await anonymous.request(
        method, concrete(path), json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, (method, path, response.text)
