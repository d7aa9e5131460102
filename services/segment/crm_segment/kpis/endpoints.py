"""HTTP endpoints of the kpis part."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["kpis"])
