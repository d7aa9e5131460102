"""``POST /v1/events``: behaviour events in batches of up to 1,000."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import TypeAdapter

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import BadRequest, UnprocessableEntity, error_responses
from crm_profile.behaviour import service
from crm_profile.behaviour.errors import BatchTooLarge
from crm_profile.behaviour.schemas import BatchResult, EventBatch

router = APIRouter(prefix="/v1/events", tags=["behaviour"])
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:write"))]


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` substituted in place, so OpenAPI can embed it whole."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            if "propertyName" in node:  # a discriminator: its mapping points into $defs
                return {"propertyName": node["propertyName"]}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


#: The body is read raw and parsed by the service (one bad event must not fail the batch), so
#: its schema is documented here rather than derived from a parameter.
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline(TypeAdapter(EventBatch).json_schema())}},
    }
}


async def _body(request: Request) -> bytes:
    """The raw body, refused with 413 beyond ``MAX_BODY_BYTES`` without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > service.MAX_BODY_BYTES:
        raise BatchTooLarge(f"the body may be at most {service.MAX_BODY_BYTES} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > service.MAX_BODY_BYTES:
            raise BatchTooLarge(f"the body may be at most {service.MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=202,
    response_model=BatchResult,
    summary="Record behaviour events",
    openapi_extra=_REQUEST_BODY,
    responses=error_responses(BadRequest, UnprocessableEntity, BatchTooLarge),
)
async def record_events(
    session: SessionDep, principal: Writer, body: Annotated[bytes, Depends(_body)]
) -> BatchResult:
    """Stores each valid event, once per ``event_id``; bad events are listed by index."""
    return await service.record(session, body)
