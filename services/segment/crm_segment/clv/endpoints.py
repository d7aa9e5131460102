"""HTTP endpoints of the clv part."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["clv"])
