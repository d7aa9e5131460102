"""crm_common.errors: every error is RFC 9457 problem+json, and documented as such."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import text as sql_text

from crm_common.app import create_service_app
from crm_common.db import SessionDep
from crm_common.errors import (
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    Conflict,
    CrmError,
    FieldError,
    Forbidden,
    InvalidCursor,
    NotFound,
    Problem,
    ServiceUnavailable,
    Unauthorized,
    UnprocessableEntity,
    ValidationProblem,
    error_responses,
    field_errors,
    install_error_handlers,
    problem_response,
    problem_type,
)
from crm_common.settings import ServiceSettings
from crm_common.testing import asgi_client

ERRORS: dict[str, type[CrmError]] = {
    cls.__name__: cls
    for cls in (
        CrmError,
        BadRequest,
        InvalidCursor,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        UnprocessableEntity,
        ServiceUnavailable,
    )
}


class Line(BaseModel):
    sku: str
    quantity: int


class Order(BaseModel):
    email: str
    lines: list[Line]


class Health(BaseModel):
    status: str


def make_app() -> FastAPI:
    app = FastAPI(title="errors", version="1")

    @app.get("/raise/{name}")
    async def raise_named(name: str, detail: str | None = None) -> dict[str, str]:
        raise ERRORS[name](detail)

    @app.get("/conflict-with-fields")
    async def conflict_with_fields() -> None:
        raise Conflict(
            "email already used",
            errors=[FieldError(field="body.email", reason="taken", code="duplicate")],
        )

    @app.post("/orders", status_code=201)
    async def create_order(order: Order) -> Order:
        return order

    @app.get("/search")
    async def search(limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/http/{status}")
    async def http_error(status: int, kind: str = "text") -> None:
        if kind == "dict":
            raise HTTPException(status, detail={"nested": "not a string"})
        if kind == "headers":
            raise HTTPException(status, detail="slow down", headers={"Retry-After": "7"})
        raise HTTPException(status, detail=f"custom {status}")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at /srv/secret/config.py")

    @app.get("/secured")
    async def secured(
        credentials: Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())],
    ) -> dict[str, str]:
        return {"scheme": credentials.scheme}

    @app.get(
        "/probe",
        responses={503: {"model": Health, "description": "A dependency is down"}},
    )
    async def probe() -> Health:
        return Health(status="ok")

    @app.get("/documented", responses=error_responses(NotFound, UnprocessableEntity))
    async def documented() -> dict[str, str]:
        return {}

    @app.get("/paged")
    async def paged(cursor: str | None = None) -> dict[str, str]:
        return {}

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {}

    install_error_handlers(app)
    return app


APP = make_app()


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:crm:problem:{slug}"
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= body.keys()
    return body


class TestProblemType:
    def test_urn(self) -> None:
        assert problem_type("not-found") == "urn:crm:problem:not-found"


class TestCrmError:
    @pytest.mark.parametrize(
        ("cls", "status", "slug"),
        [
            (CrmError, 500, "internal-error"),
            (BadRequest, 400, "bad-request"),
            (InvalidCursor, 400, "invalid-cursor"),
            (Unauthorized, 401, "unauthorized"),
            (Forbidden, 403, "forbidden"),
            (NotFound, 404, "not-found"),
            (Conflict, 409, "conflict"),
            (UnprocessableEntity, 422, "validation-error"),
            (ServiceUnavailable, 503, "unavailable"),
        ],
    )
    def test_status_and_type(self, cls: type[CrmError], status: int, slug: str) -> None:
        error = cls("why")
        assert error.status_code == status
        assert error.type == f"urn:crm:problem:{slug}"
        assert error.detail == "why"
        assert str(error) == "why"
        assert error.errors == []

    def test_message_defaults_to_title(self) -> None:
        error = NotFound()
        assert error.detail is None
        assert str(error) == "Not found"

    def test_keeps_field_errors(self) -> None:
        fields = (FieldError(field="body.email", reason="bad", code="value_error"),)
        assert UnprocessableEntity("x", errors=fields).errors == list(fields)

    def test_invalid_cursor_is_a_bad_request(self) -> None:
        assert issubclass(InvalidCursor, BadRequest)
        assert issubclass(BadRequest, CrmError)


class TestCrmErrorSchema:
    def test_problem_model(self) -> None:
        assert NotFound.schema() == {404: {"model": Problem, "description": "Not found"}}

    def test_validation_problem_model_for_422(self) -> None:
        assert UnprocessableEntity.schema() == {
            422: {"model": ValidationProblem, "description": "Invalid request"}
        }


class TestErrorResponses:
    def test_auth_adds_401_and_403(self) -> None:
        responses = error_responses(NotFound)
        assert set(responses) == {401, 403, 404}
        assert responses[401]["model"] is Problem
        assert responses[403]["model"] is Problem

    def test_without_auth(self) -> None:
        assert error_responses(Conflict, UnprocessableEntity, auth=False) == {
            **Conflict.schema(),
            **UnprocessableEntity.schema(),
        }

    def test_nothing(self) -> None:
        assert error_responses(auth=False) == {}


class TestProblemResponse:
    def test_body_and_media_type(self) -> None:
        response = problem_response(
            409, slug="conflict", title="Conflict", detail="taken", instance="/x"
        )
        assert response.status_code == 409
        assert response.media_type == PROBLEM_CONTENT_TYPE
        assert json.loads(bytes(response.body)) == {
            "type": "urn:crm:problem:conflict",
            "title": "Conflict",
            "status": 409,
            "detail": "taken",
            "instance": "/x",
        }

    def test_errors_and_headers(self) -> None:
        response = problem_response(
            422,
            slug="validation-error",
            title="Invalid request",
            detail=None,
            instance=None,
            errors=[FieldError(field="query.limit", reason="too big", code="less_than_equal")],
            headers={"X-Extra": "1"},
        )
        body = json.loads(bytes(response.body))
        assert body["errors"] == [
            {"field": "query.limit", "reason": "too big", "code": "less_than_equal"}
        ]
        assert body["detail"] is None
        assert response.headers["x-extra"] == "1"

    def test_empty_errors_are_kept(self) -> None:
        response = problem_response(
            422, slug="validation-error", title="t", detail=None, instance=None, errors=[]
        )
        assert json.loads(bytes(response.body))["errors"] == []


class TestFieldErrors:
    def test_locations_become_dotted_names(self) -> None:
        errors = field_errors(
            [
                {"loc": ("body", "lines", 0, "sku"), "msg": "Field required", "type": "missing"},
                {"loc": ("query", "limit"), "msg": "too big", "type": "less_than_equal"},
                {"loc": ("body", 3), "msg": "bad", "type": "json_invalid"},
                {"loc": (0, "x"), "msg": "m", "type": "t"},
            ]
        )
        assert [e.field for e in errors] == [
            "body.lines[0].sku",
            "query.limit",
            "body[3]",
            "[0].x",
        ]
        assert (errors[0].reason, errors[0].code) == ("Field required", "missing")

    def test_missing_keys_have_defaults(self) -> None:
        assert field_errors([{}]) == [FieldError(field="", reason="invalid", code="invalid")]


class TestCrmErrorHandler:
    @pytest.mark.parametrize(
        ("name", "status", "slug", "title"),
        [
            ("CrmError", 500, "internal-error", "Internal server error"),
            ("BadRequest", 400, "bad-request", "Bad request"),
            ("InvalidCursor", 400, "invalid-cursor", "Invalid pagination cursor"),
            ("Forbidden", 403, "forbidden", "Not allowed"),
            ("NotFound", 404, "not-found", "Not found"),
            ("Conflict", 409, "conflict", "Conflict"),
            ("ServiceUnavailable", 503, "unavailable", "Service unavailable"),
        ],
    )
    async def test_problem_json(self, name: str, status: int, slug: str, title: str) -> None:
        async with asgi_client(APP) as client:
            response = await client.get(f"/raise/{name}", params={"detail": "because"})
        body = assert_problem(response, status, slug)
        assert body == {
            "type": f"urn:crm:problem:{slug}",
            "title": title,
            "status": status,
            "detail": "because",
            "instance": f"/raise/{name}",
        }
        assert "www-authenticate" not in response.headers

    async def test_detail_defaults_to_title(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/raise/NotFound")
        assert assert_problem(response, 404, "not-found")["detail"] == "Not found"

    async def test_unauthorized_challenges(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/raise/Unauthorized", params={"detail": "no key"})
        body = assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert body["detail"] == "no key"

    async def test_unprocessable_always_lists_errors(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/raise/UnprocessableEntity", params={"detail": "bad"})
        assert assert_problem(response, 422, "validation-error")["errors"] == []

    async def test_field_errors_on_other_statuses(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/conflict-with-fields")
        body = assert_problem(response, 409, "conflict")
        assert body["errors"] == [{"field": "body.email", "reason": "taken", "code": "duplicate"}]

    async def test_no_errors_key_without_field_errors(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/raise/Conflict")
        assert "errors" not in response.json()


class TestValidationErrorHandler:
    async def test_nested_body_fields_are_named(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.post(
                "/orders", json={"email": "a@b.c", "lines": [{"quantity": "many"}]}
            )
        body = assert_problem(response, 422, "validation-error")
        assert body["title"] == "Invalid request"
        assert body["detail"] == "2 invalid field(s)"
        assert body["instance"] == "/orders"
        by_field = {e["field"]: e for e in body["errors"]}
        assert by_field["body.lines[0].sku"]["code"] == "missing"
        assert by_field["body.lines[0].quantity"]["code"] == "int_parsing"
        assert all(e["reason"] for e in body["errors"])

    async def test_query_parameter(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/search", params={"limit": 1000})
        body = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in body["errors"]] == ["query.limit"]
        assert body["errors"][0]["code"] == "less_than_equal"

    async def test_path_parameter(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/items/abc")
        body = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in body["errors"]] == ["path.item_id"]

    async def test_malformed_json_is_400(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.post(
                "/orders", content=b'{"email": ', headers={"content-type": "application/json"}
            )
        body = assert_problem(response, 400, "bad-request")
        assert body["detail"] == "Request body is not valid JSON"
        assert [e["code"] for e in body["errors"]] == ["json_invalid"]

    async def test_valid_request_passes(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.post(
                "/orders", json={"email": "a@b.c", "lines": [{"sku": "X", "quantity": 1}]}
            )
        assert response.status_code == 201


class TestHttpErrorHandler:
    async def test_unknown_route_is_404(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/no/such/route")
        body = assert_problem(response, 404, "not-found")
        assert body["title"] == "Not Found"
        assert body["instance"] == "/no/such/route"

    async def test_wrong_method_is_405_with_allow(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.delete("/orders")
        body = assert_problem(response, 405, "method-not-allowed")
        assert body["title"] == "Method Not Allowed"
        assert response.headers["allow"] == "POST"

    @pytest.mark.parametrize(
        ("status", "slug"),
        [
            (400, "bad-request"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (409, "conflict"),
            (413, "payload-too-large"),
            (415, "unsupported-media-type"),
            (418, "http-418"),
            (429, "too-many-requests"),
        ],
    )
    async def test_http_exception(self, status: int, slug: str) -> None:
        async with asgi_client(APP) as client:
            response = await client.get(f"/http/{status}")
        body = assert_problem(response, status, slug)
        assert body["detail"] == f"custom {status}"

    async def test_non_string_detail_is_replaced_by_title(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/http/409", params={"kind": "dict"})
        body = assert_problem(response, 409, "conflict")
        assert body["detail"] == body["title"] == "Conflict"

    async def test_headers_are_kept(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/http/429", params={"kind": "headers"})
        assert_problem(response, 429, "too-many-requests")
        assert response.headers["retry-after"] == "7"

    async def test_unknown_status(self) -> None:
        async with asgi_client(APP) as client:
            response = await client.get("/http/599")
        body = assert_problem(response, 599, "http-599")
        assert body["title"] == "Error"


class TestUnhandledErrorHandler:
    async def test_500_without_internals(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.ERROR, logger="crm.errors")
        async with asgi_client(APP) as client:
            response = await client.get("/boom")
        body = assert_problem(response, 500, "internal-error")
        assert body == {
            "type": "urn:crm:problem:internal-error",
            "title": "Internal server error",
            "status": 500,
            "detail": "An unexpected error occurred",
            "instance": "/boom",
        }
        for secret in ("hunter2", "/srv/secret", "RuntimeError", "Traceback"):
            assert secret not in response.text
        (record,) = [r for r in caplog.records if r.name == "crm.errors"]
        assert record.getMessage() == "unhandled error"
        assert record.error_type == "RuntimeError"  # type: ignore[attr-defined]
        assert record.path == "/boom"  # type: ignore[attr-defined]
        assert record.exc_info is not None


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return make_app().openapi()


class TestOpenApi:
    def test_problem_components_replace_fastapi_ones(self, schema: dict[str, Any]) -> None:
        components = schema["components"]["schemas"]
        assert {"Problem", "ValidationProblem", "FieldError"} <= components.keys()
        assert "HTTPValidationError" not in components
        assert "ValidationError" not in components
        errors = components["ValidationProblem"]["properties"]["errors"]
        assert errors["items"] == {"$ref": "#/components/schemas/FieldError"}

    def test_every_error_response_is_problem_json(self, schema: dict[str, Any]) -> None:
        seen = 0
        for path, item in schema["paths"].items():
            for operation in item.values():
                for code, response in operation["responses"].items():
                    if code[0] not in "45" or path == "/probe":
                        continue
                    seen += 1
                    assert list(response["content"]) == [PROBLEM_CONTENT_TYPE], (path, code)
                    ref = response["content"][PROBLEM_CONTENT_TYPE]["schema"]["$ref"]
                    expected = "ValidationProblem" if code == "422" else "Problem"
                    assert ref == f"#/components/schemas/{expected}"
        assert seen > 5

    def test_body_routes_document_400_and_422(self, schema: dict[str, Any]) -> None:
        responses = schema["paths"]["/orders"]["post"]["responses"]
        assert {"201", "400", "422"} <= responses.keys()
        assert responses["400"]["description"] == "Malformed request body"
        assert "application/json" in responses["201"]["content"]

    def test_parameter_routes_document_422_only(self, schema: dict[str, Any]) -> None:
        for path in ("/search", "/items/{item_id}"):
            responses = schema["paths"][path]["get"]["responses"]
            assert "422" in responses
            assert "400" not in responses

    def test_cursor_routes_document_invalid_cursor(self, schema: dict[str, Any]) -> None:
        responses = schema["paths"]["/paged"]["get"]["responses"]
        assert responses["400"]["description"] == "Invalid pagination cursor"
        assert list(responses["400"]["content"]) == [PROBLEM_CONTENT_TYPE]
        assert "422" in responses

    def test_routes_without_input_have_no_422(self, schema: dict[str, Any]) -> None:
        assert set(schema["paths"]["/plain"]["get"]["responses"]) == {"200"}

    def test_secured_routes_document_401_and_403(self, schema: dict[str, Any]) -> None:
        responses = schema["paths"]["/secured"]["get"]["responses"]
        assert responses["401"]["description"] == "Missing or invalid credentials"
        assert responses["401"]["headers"]["WWW-Authenticate"]["schema"]["const"] == "Bearer"
        assert responses["403"]["description"] == "Not allowed"
        assert "401" not in schema["paths"]["/plain"]["get"]["responses"]

    def test_declared_error_responses(self, schema: dict[str, Any]) -> None:
        responses = schema["paths"]["/documented"]["get"]["responses"]
        assert {"401", "403", "404", "422"} <= responses.keys()
        assert responses["404"]["description"] == "Not found"
        assert responses["422"]["content"][PROBLEM_CONTENT_TYPE]["schema"]["$ref"].endswith(
            "/ValidationProblem"
        )

    def test_own_non_problem_body_is_kept(self, schema: dict[str, Any]) -> None:
        response = schema["paths"]["/probe"]["get"]["responses"]["503"]
        assert response["content"] == {
            "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
        }

    def test_schema_is_built_once(self) -> None:
        app = make_app()
        assert app.openapi() is app.openapi()

    def test_served_schema(self) -> None:
        app = make_app()
        assert app.openapi()["info"]["title"] == "errors"

    async def test_served_over_http(self) -> None:
        async with asgi_client(make_app()) as client:
            response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert "Problem" in response.json()["components"]["schemas"]

    def test_non_operation_entries_are_left_alone(self) -> None:
        app = FastAPI()

        @app.get("/things", response_model=None)
        async def things(
            q: str | None = None,
        ) -> dict[str, str]:  # pragma: no cover - never called
            return {}

        generated = app.openapi

        def with_extras() -> dict[str, Any]:
            schema = generated()
            item = schema["paths"]["/things"]
            item["summary"] = "Things"
            item["x-internal"] = {"note": "no responses here"}
            item["get"]["responses"]["404"] = {
                "description": "inline",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
            return schema

        app.openapi = with_extras  # type: ignore[method-assign]
        install_error_handlers(app)
        schema = app.openapi()
        item = schema["paths"]["/things"]
        assert item["summary"] == "Things"
        assert item["x-internal"] == {"note": "no responses here"}
        assert list(item["get"]["responses"]["404"]["content"]) == [PROBLEM_CONTENT_TYPE]


def _database_router():
    """Routes whose SQL fails the way bad input (or a bug) makes PostgreSQL fail."""
    router = APIRouter()

    @router.get("/nul")
    async def nul(session: SessionDep) -> dict[str, str]:
        await session.execute(sql_text("SELECT CAST(:v AS text)"), {"v": "a\x00b"})
        return {}

    @router.get("/overflow")
    async def overflow(session: SessionDep) -> dict[str, str]:
        await session.execute(sql_text("SELECT CAST(:v AS integer)"), {"v": 2**40})
        return {}

    @router.get("/bug")
    async def bug(session: SessionDep) -> dict[str, str]:
        await session.execute(sql_text("SELECT 1 / 0"))
        return {}

    return router


class TestDatabaseInputErrors:
    """Values PostgreSQL cannot store are the client's problem (422), other database errors 500."""

    @pytest.fixture
    def db_app(self, crm_runtime):
        settings = ServiceSettings(
            service_name="t", database_url=crm_runtime.database_url, nats_url=crm_runtime.nats_url
        )
        return create_service_app(
            settings=settings, title="t", description="t", routers=[_database_router()]
        )

    @pytest.mark.parametrize("path", ["/nul", "/overflow"])
    async def test_unstorable_input_is_422(self, db_app, path):
        async with asgi_client(db_app) as client:
            response = await client.get(path)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:crm:problem:unstorable-value"

    async def test_other_database_errors_stay_500(self, db_app):
        async with asgi_client(db_app) as client:
            response = await client.get("/bug")
        assert response.status_code == 500
        assert response.json()["type"] == "urn:crm:problem:internal-error"
