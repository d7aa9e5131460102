"""Batch jobs (RFM recompute, model fit, clusters): queued by the API, run by the worker."""
