"""Errors of the clusters part (a failed run fails its job with this message)."""

from crm_common.errors import UnprocessableEntity


class ClusteringFailed(UnprocessableEntity):
    """Too few customers (or too few distinct ones) to form the clusters asked for."""

    slug = "clustering-failed"
    title = "Clustering failed"
