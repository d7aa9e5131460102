"""HTTP endpoints of the clusters part."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["clusters"])
