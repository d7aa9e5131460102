"""tags part of the segment service."""
