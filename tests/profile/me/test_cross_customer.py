"""A customer's token never reaches another customer's data, on any route of the profile API.

Customer A's JWT is sent to every documented operation (read from the OpenAPI document, so
routes added later are covered too): the ``/v1/me`` routes, with B's export id wherever an id
is asked for, and every other route with B's external id. API-key routes refuse the token; the
``/v1/me`` routes answer about A or not at all. No answer holds anything of B's, and B's data is
unchanged afterwards.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import FastAPI

from crm_common.testing import mint_customer_token
from crm_profile.models import ExportJob
from tests.profile.conftest import published
from tests.profile.gdpr.factories import seed

PARAM = re.compile(r"{([^}]+)}")


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """Every documented (method, path, operation), ``DELETE /v1/me`` last (it erases A)."""
    ops = [
        (method.upper(), path, op)
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    return sorted(ops, key=lambda o: (o[0], o[1]) == ("DELETE", "/v1/me"))


def fill(path: str, b_external_id: str, b_export_id: str) -> str:
    """``path`` with B's ids for every customer, order or export parameter."""
    external_id = f"o-{b_external_id}" if path.startswith("/v1/orders/") else b_external_id
    values = {
        "external_id": external_id,
        "export_id": b_export_id,
        "channel": "email",
        "tag": "vip",
    }

    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name in values:
            return values[name]
        return "1" if name.endswith("id") and "dead" in path else str(uuid.uuid4())

    return PARAM.sub(value, path)


class TestCrossCustomer:
    async def test_a_token_never_reaches_another_customers_data(self, app, client, session):
        a = await seed(client, session, "xc-a", 51)
        b = await seed(client, session, "xc-b", 52)
        b_export = (await client.post("/v1/customers/xc-b/export")).json()["id"]
        b_before = (await client.get("/v1/customers/xc-b")).json()
        secrets = [b.email, b.phone, b.anonymous_id, "First52", str(b.id), "o-xc-b"]
        token = {"Authorization": f"Bearer {mint_customer_token(a.external_id)}"}

        checked = []
        for method, path, op in operations(app):
            if "security" not in op:  # public probes: /healthz, /readyz
                continue
            url = fill(path, b.external_id, b_export)
            body: dict[str, Any] | None = {} if method in {"POST", "PUT", "PATCH"} else None
            response = await client.request(method, url, headers=token, json=body)
            answer = response.json() if response.content else {}
            if isinstance(answer, dict):
                answer.pop("instance", None)  # a problem's instance echoes the path asked for
            leaked = [s for s in secrets if s in str(answer)]
            assert not leaked, f"{method} {url} answered with B's {leaked}"
            if path.startswith("/v1/me"):
                assert "xc-b" not in str(answer), f"{method} {url}"
                assert response.status_code < 500, f"{method} {url}: {response.status_code}"
            else:
                assert response.status_code in (401, 403, 404), f"{method} {url}"
            checked.append(f"{method} {path}")

        assert {"GET /v1/me", "DELETE /v1/me", "GET /v1/me/exports/{export_id}"} <= set(checked)
        assert {"GET /v1/customers/{external_id}", "DELETE /v1/customers/{external_id}"} <= set(
            checked
        )
        assert {"POST /v1/customers/{external_id}/export", "GET /v1/exports/{export_id}"} <= set(
            checked
        )
        # B is untouched; A's own DELETE /v1/me (the last call) erased A only.
        b_after = (await client.get("/v1/customers/xc-b")).json()
        assert b_after == b_before
        assert await session.get(ExportJob, uuid.UUID(b_export)) is not None
        erased = await published(session, "crm.profile.customer.erased")
        assert [e["erased_external_ids"] for e in erased] == [["xc-a"]]
        assert (await client.get("/v1/customers/xc-a")).status_code == 404

    async def test_the_exports_route_refuses_a_token_for_the_right_customer(self, client, session):
        await seed(client, session, "xc-c", 53)
        export = (await client.post("/v1/customers/xc-c/export")).json()["id"]
        token = {"Authorization": f"Bearer {mint_customer_token('xc-c')}"}
        assert (await client.get(f"/v1/exports/{export}", headers=token)).status_code == 401
        assert (await client.get("/v1/customers/xc-c", headers=token)).status_code == 401
