"""clusters part of the segment service."""
