"""lifecycle part of the segment service."""
