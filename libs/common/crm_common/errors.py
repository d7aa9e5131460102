"""Errors as RFC 9457 ``application/problem+json``: the ``CrmError`` hierarchy and its handlers.

Every error a service returns (domain errors, request validation, routing 404/405, malformed
JSON, unhandled exceptions) goes through :func:`install_error_handlers` and has the same shape:
``{"type", "title", "status", "detail", "instance"}`` plus ``errors`` for validation problems,
each naming the field (``body.email``) and the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "BadRequest",
    "Conflict",
    "CrmError",
    "INPUT_SQLSTATES",
    "FieldError",
    "Forbidden",
    "InvalidCursor",
    "NotFound",
    "Problem",
    "ServiceUnavailable",
    "Unauthorized",
    "UnprocessableEntity",
    "ValidationProblem",
    "error_responses",
    "field_errors",
    "install_error_handlers",
    "problem_response",
    "problem_type",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger("crm.errors")


def problem_type(slug: str) -> str:
    """Stable problem ``type`` URI for a slug such as ``not-found``."""
    return f"urn:crm:problem:{slug}"


class FieldError(BaseModel):
    """One invalid field: where it is and why it was refused."""

    field: str
    reason: str
    code: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class ValidationProblem(Problem):
    """Problem details for invalid input, one entry per offending field."""

    errors: list[FieldError]


class CrmError(Exception):
    """Base of every domain error: carries its HTTP status and stable problem type."""

    status_code: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str | None = None, *, errors: Sequence[FieldError] = ()) -> None:
        """Keep the human-readable ``detail`` and, optionally, field errors."""
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors)

    @property
    def type(self) -> str:
        """The problem type URI."""
        return problem_type(self.slug)

    @classmethod
    def schema(cls) -> dict[int | str, dict[str, Any]]:
        """OpenAPI ``responses=`` entry for this error."""
        model = ValidationProblem if cls.status_code == 422 else Problem
        return {cls.status_code: {"model": model, "description": cls.title}}


class BadRequest(CrmError):
    """The request cannot be understood (malformed body, bad header)."""

    status_code = 400
    slug = "bad-request"
    title = "Bad request"


class InvalidCursor(BadRequest):
    """A pagination cursor that this service did not issue."""

    slug = "invalid-cursor"
    title = "Invalid pagination cursor"


class Unauthorized(CrmError):
    """Missing or invalid credentials."""

    status_code = 401
    slug = "unauthorized"
    title = "Missing or invalid credentials"


class Forbidden(CrmError):
    """Valid credentials without the needed scope."""

    status_code = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(CrmError):
    """The resource does not exist (or is not visible to the caller)."""

    status_code = 404
    slug = "not-found"
    title = "Not found"


class Conflict(CrmError):
    """The request conflicts with the resource's current state."""

    status_code = 409
    slug = "conflict"
    title = "Conflict"


class UnprocessableEntity(CrmError):
    """The payload is well formed but invalid."""

    status_code = 422
    slug = "validation-error"
    title = "Invalid request"


class ServiceUnavailable(CrmError):
    """A dependency (database, NATS) is not reachable right now."""

    status_code = 503
    slug = "unavailable"
    title = "Service unavailable"


def error_responses(*errors: type[CrmError], auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the given errors, plus 401/403 when it needs credentials."""
    out: dict[int | str, dict[str, Any]] = {}
    if auth:
        out[401] = {"model": Problem, "description": "Missing or invalid credentials"}
        out[403] = {"model": Problem, "description": "Credentials lack the needed scope"}
    for error in errors:
        out.update(error.schema())
    return out


def problem_response(
    status: int,
    *,
    slug: str,
    title: str,
    detail: str | None,
    instance: str | None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Render a problem+json response."""
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = [e.model_dump() for e in errors]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def _field_name(loc: Sequence[int | str]) -> str:
    """``("body", "lines", 0, "sku")`` → ``body.lines[0].sku``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """Pydantic error dicts as :class:`FieldError` entries."""
    return [
        FieldError(
            field=_field_name(e.get("loc", ())),
            reason=str(e.get("msg", "invalid")),
            code=str(e.get("type", "invalid")),
        )
        for e in errors
    ]


_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


async def _crm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CrmError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return problem_response(
        exc.status_code,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail or exc.title,
        instance=request.url.path,
        errors=exc.errors if exc.errors or exc.status_code == 422 else None,
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    # A body that is not JSON at all is a malformed request, not a field problem.
    if any(e.get("type") == "json_invalid" for e in raw):
        return problem_response(
            400,
            slug="bad-request",
            title="Bad request",
            detail="Request body is not valid JSON",
            instance=request.url.path,
            errors=field_errors(raw),
        )
    return problem_response(
        422,
        slug="validation-error",
        title="Invalid request",
        detail=f"{len(raw)} invalid field(s)",
        instance=request.url.path,
        errors=field_errors(raw),
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(
        status,
        slug=_SLUGS.get(status, f"http-{status}"),
        title=title,
        detail=detail,
        instance=request.url.path,
        headers=dict(exc.headers or {}) or None,
    )


#: PostgreSQL data exceptions that only input can cause: a NUL character in text, a number or
#: date out of the column's range, a string longer than its column.
#: ``22000`` is also what asyncpg raises when it cannot encode an argument (an int beyond int32).
INPUT_SQLSTATES = frozenset({"22000", "22021", "22P05", "22003", "22001", "22007", "22008"})


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of the driver error SQLAlchemy wrapped (``orig`` or its cause)."""
    orig = getattr(exc, "orig", None)
    state = getattr(getattr(orig, "__cause__", None), "sqlstate", None) or getattr(
        orig, "sqlstate", None
    )
    return state if isinstance(state, str) else None


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if _sqlstate(exc) in INPUT_SQLSTATES:
        return problem_response(
            422,
            slug="unstorable-value",
            title="Invalid request",
            detail="A value cannot be stored (a NUL character, or a number, date or text out of range)",
            instance=request.url.path,
            errors=[],
        )
    return await _unhandled(request, exc)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception(
        "unhandled error", extra={"path": request.url.path, "error_type": type(exc).__name__}
    )
    return problem_response(
        500,
        slug="internal-error",
        title="Internal server error",
        detail="An unexpected error occurred",
        instance=request.url.path,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as problem+json and document it in OpenAPI."""
    app.add_exception_handler(CrmError, _crm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unhandled)
    _document_problems(app)


def _document_problems(app: FastAPI) -> None:
    """Patch ``app.openapi`` so every error response is documented as problem+json."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Problem, ValidationProblem, FieldError):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                _problemise(operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problemise(operation: dict[str, Any]) -> None:
    """Make every 4xx/5xx response of ``operation`` problem+json; add 400 where there is a body."""
    responses: dict[str, Any] = operation["responses"]
    if "requestBody" in operation or any(
        p.get("in") in ("query", "path") for p in operation.get("parameters", [])
    ):
        responses.setdefault("422", {"description": "Invalid request"})
    if "requestBody" in operation:
        responses.setdefault("400", {"description": "Malformed request body"})
    if any(
        p.get("in") == "query" and p.get("name") == "cursor"
        for p in operation.get("parameters", [])
    ):
        responses.setdefault("400", {"description": InvalidCursor.title})
    if operation.get("security"):
        responses.setdefault(
            "401",
            {
                "description": Unauthorized.title,
                "headers": {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
            },
        )
        responses.setdefault("403", {"description": Forbidden.title})
    for code, response in responses.items():
        if code[0] not in "45" or not _is_problem(response):
            continue
        ref = "ValidationProblem" if code == "422" else "Problem"
        response["content"] = {
            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{ref}"}}
        }


def _is_problem(response: dict[str, Any]) -> bool:
    """True unless the route documented its own non-problem body (``/readyz``'s 503 ``Health``)."""
    for media in response.get("content", {}).values():
        ref = str(media.get("schema", {}).get("$ref", ""))
        if ref and ref.rsplit("/", 1)[-1] not in _PROBLEM_SCHEMAS:
            return False
    return True


_PROBLEM_SCHEMAS = frozenset({"Problem", "ValidationProblem", "HTTPValidationError"})
