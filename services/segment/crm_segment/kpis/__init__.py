"""kpis part of the segment service."""
