"""segments part of the segment service."""
