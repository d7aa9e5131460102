"""HTTP endpoints of the scores part."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["scores"])
