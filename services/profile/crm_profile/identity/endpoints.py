"""Placeholder router; replaced by the identity API."""

from fastapi import APIRouter

router = APIRouter()
