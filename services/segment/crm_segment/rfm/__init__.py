"""rfm part of the segment service."""
