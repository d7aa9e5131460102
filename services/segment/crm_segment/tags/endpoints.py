"""HTTP endpoints of the tags part."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["tags"])
