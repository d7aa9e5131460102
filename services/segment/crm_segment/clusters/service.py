"""K-means clusters of customers on log-scaled, standardised behaviour features.

Features per active root customer with a qualifying order (see
:func:`crm_segment.clusters.repository.features`) -> ``log1p`` -> ``StandardScaler`` ->
``KMeans(n_init=10, random_state=0)``; without an explicit ``k`` the k in 2..8 with the best
silhouette (on a sample of at most ``cluster_silhouette_sample`` customers) wins. Each cluster
is stored with its size, per-feature mean and median in original units, its centroid and a
readable label; every clustered customer's ``customer_score.cluster_id`` is set and the
built-in cluster segments are synced. See ``docs/segment/clusters.md``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment import builtins
from crm_segment.clusters import repository
from crm_segment.clusters.errors import ClusteringFailed
from crm_segment.clusters.labels import make_labels
from crm_segment.clusters.repository import FEATURES
from crm_segment.clusters.schemas import K_MAX, K_MIN
from crm_segment.config import settings
from crm_segment.models import Cluster

Array = NDArray[np.float64]
#: The k tried when none is given.
K_RANGE = range(K_MIN, K_MAX + 1)


@dataclass(frozen=True)
class Features:
    """The feature matrix (rows = customers in ``ids``, columns = :data:`FEATURES`)."""

    ids: list[str]
    matrix: Array

    def __len__(self) -> int:
        """The number of customers."""
        return len(self.ids)


def _kmeans(x: Array, k: int) -> tuple[NDArray[np.int64], Array]:
    model = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x)
    return np.asarray(model.labels_, dtype=np.int64), np.asarray(model.cluster_centers_)


def _silhouette(x: Array, labels: NDArray[np.int64]) -> float:
    sample = settings.cluster_silhouette_sample
    if len(x) > sample:
        return float(silhouette_score(x, labels, sample_size=sample, random_state=0))
    return float(silhouette_score(x, labels))


def cluster_matrix(
    matrix: Array, k: int | None
) -> tuple[int, NDArray[np.int64], Array, Array, dict[int, float]]:
    """K-means on ``log1p`` + standardised ``matrix``: (k, labels, standardised data, centres,
    silhouette by k tried). Raises :class:`ClusteringFailed` when there are too few
    customers, or too few distinct ones, for ``k`` (or for 2 when choosing)."""
    n = len(matrix)
    needed = max(settings.cluster_min_customers, (k or 2) + 1)
    if n < needed:
        raise ClusteringFailed(
            f"not enough customers: {n} with a purchase; at least {needed} are needed"
        )
    scaled = np.asarray(StandardScaler().fit_transform(np.log1p(np.maximum(matrix, 0.0))))
    distinct = len(np.unique(scaled, axis=0))
    candidates = [k] if k is not None else [c for c in K_RANGE if c < distinct]
    if not candidates or candidates[0] > distinct:
        raise ClusteringFailed(
            f"not enough distinct customers: {distinct} different feature rows for "
            f"{k if k is not None else 2} clusters"
        )
    best: tuple[float, int, NDArray[np.int64], Array] | None = None
    by_k: dict[int, float] = {}
    for c in candidates:
        labels, centres = _kmeans(scaled, c)
        by_k[c] = _silhouette(scaled, labels) if len(set(labels.tolist())) > 1 else -1.0
        if best is None or by_k[c] > best[0]:
            best = (by_k[c], c, labels, centres)
    assert best is not None
    _, chosen, labels, centres = best
    return chosen, labels, scaled, centres, by_k


def _describe(
    matrix: Array, scaled: Array, labels: NDArray[np.int64], centres: Array, k: int
) -> list[dict[str, Any]]:
    """Per cluster: size, per-feature mean / median in original units, centroid and median
    difference from the whole population (both in standard deviations of log1p)."""
    overall = np.median(scaled, axis=0)
    out = []
    for c in range(k):
        members = labels == c
        rows, zs = matrix[members], scaled[members]
        medians = np.median(zs, axis=0)
        out.append(
            {
                "size": int(members.sum()),
                "features": {
                    f: {
                        "mean": round(float(rows[:, i].mean()), 2),
                        "median": round(float(np.median(rows[:, i])), 2),
                    }
                    for i, f in enumerate(FEATURES)
                },
                "centroid": {f: round(float(centres[c, i]), 4) for i, f in enumerate(FEATURES)},
                "difference": {
                    f: round(float(medians[i] - overall[i]), 4) for i, f in enumerate(FEATURES)
                },
            }
        )
    return out


async def run_clusters(session: AsyncSession, k: int | None, now: datetime) -> dict[str, Any]:
    """Cluster every active customer with a purchase as of ``now``; store the run, set their
    ``cluster_id``, sync the built-in cluster segments; the job result."""
    rows = await repository.features(session, now)
    data = Features(
        ids=[r.id for r in rows],
        matrix=np.array([r[1:] for r in rows], dtype=np.float64).reshape(len(rows), len(FEATURES)),
    )
    chosen, labels, scaled, centres, by_k = cluster_matrix(data.matrix, k)
    described = _describe(data.matrix, scaled, labels, centres, chosen)
    # index clusters by size, largest first (k-means numbering is arbitrary)
    order = sorted(range(chosen), key=lambda c: (-described[c]["size"], c))
    names = make_labels([described[c]["difference"] for c in order])
    run_id = uuid.uuid4()
    created_at = datetime.now(UTC)
    overall_median = {
        f: round(float(np.median(data.matrix[:, i])), 2) for i, f in enumerate(FEATURES)
    }
    run = {
        "k": chosen,
        "silhouette": by_k[chosen],
        "silhouette_by_k": {str(c): s for c, s in by_k.items()},
        "customers": len(data),
        "as_of": now.isoformat(),
        "k_requested": k,
        "overall_median": overall_median,
    }
    clusters = [
        Cluster(
            id=uuid.uuid4(),
            run_id=run_id,
            index=index,
            label=names[index],
            size=described[c]["size"],
            description={**described[c], "run": run},
            created_at=created_at,
        )
        for index, c in enumerate(order)
    ]
    await repository.add_clusters(session, clusters)
    by_label = {c: clusters[index].id for index, c in enumerate(order)}
    await repository.assign(session, data.ids, [by_label[int(c)] for c in labels], now)
    await builtins.sync_cluster_segments(session, clusters)
    return {
        "run_id": str(run_id),
        "k": chosen,
        "silhouette": by_k[chosen],
        "silhouette_by_k": run["silhouette_by_k"],
        "customers": len(data),
        "clusters": [{"id": str(c.id), "label": c.label, "size": c.size} for c in clusters],
    }


async def latest_run(session: AsyncSession) -> list[Cluster]:
    """The clusters of the latest run (empty before the first)."""
    return await repository.latest_run(session)
