"""Placeholder router; replaced by the behaviour API."""

from fastapi import APIRouter

router = APIRouter()
