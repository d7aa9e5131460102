"""Placeholder router; replaced by the me API."""

from fastapi import APIRouter

router = APIRouter()
