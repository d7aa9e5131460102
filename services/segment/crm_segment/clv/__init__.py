"""clv part of the segment service."""
