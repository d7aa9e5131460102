"""Placeholder router; replaced by the consents API."""

from fastapi import APIRouter

router = APIRouter()
