"""Fixtures of the scores tests."""

from tests.segment.rfm.fixtures import shop

__all__ = ["shop"]
