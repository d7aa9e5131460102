"""HTTP endpoints of the segments part."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["segments"])
