"""Placeholder router; replaced by the tags API."""

from fastapi import APIRouter

router = APIRouter()
