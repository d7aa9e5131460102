"""Fixtures of the rfm tests."""

from tests.segment.rfm.fixtures import shop

__all__ = ["shop"]
