"""Placeholder router; replaced by the gdpr API."""

from fastapi import APIRouter

router = APIRouter()
