"""projections part of the segment service."""
