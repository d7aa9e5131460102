"""Materialised segment membership: the re-evaluation queue and the evaluator."""
