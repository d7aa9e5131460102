"""rules part of the segment service."""
