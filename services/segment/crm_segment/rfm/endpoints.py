"""HTTP endpoints of the rfm part."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["rfm"])
