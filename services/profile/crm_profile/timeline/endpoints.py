"""Placeholder router; replaced by the timeline API."""

from fastapi import APIRouter

router = APIRouter()
