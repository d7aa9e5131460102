"""Placeholder router; replaced by the orders API."""

from fastapi import APIRouter

router = APIRouter()
