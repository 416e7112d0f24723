"""The numerical parts of the cluster datamodel: k-means, cumulative cluster counts, per-step ridge."""

from __future__ import annotations

import numpy as np

from tdabench import RunBatches


def _sqdist(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """[n, k] squared distances, without an [n, k, d] temporary (large pools)."""
    d = (X * X).sum(axis=1)[:, None] - 2.0 * X @ C.T + (C * C).sum(axis=1)[None, :]
    return np.maximum(d, 0.0)


def kmeans(X: np.ndarray, k: int, seed: int, n_init: int = 3, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(labels [n], centroids [k, d]) of seeded k-means++ with Lloyd iterations, the best of ``n_init`` by inertia."""
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(n_init):
        centers = [X[rng.integers(len(X))]]
        for _ in range(1, k):
            d2 = _sqdist(X, np.asarray(centers)).min(axis=1)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(X), 1.0 / len(X))
            centers.append(X[rng.choice(len(X), p=p)])
        C = np.asarray(centers)
        labels = np.full(len(X), -1)
        for _ in range(max_iter):
            new = _sqdist(X, C).argmin(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            C = np.stack([X[labels == j].mean(axis=0) if np.any(labels == j) else C[j] for j in range(k)])
        inertia = float(((X - C[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, C)
    assert best is not None
    return best[1], best[2]


def nearest(X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """int64 [n]: the nearest centroid of each row."""
    return _sqdist(np.asarray(X, dtype=np.float64), centroids).argmin(axis=1)


def nearest_rows(X: np.ndarray, Y: np.ndarray, k: int) -> np.ndarray:
    """int64 [n, min(k, len(Y))]: the rows of ``Y`` nearest each row of ``X`` (ties by row)."""
    return np.argsort(_sqdist(np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)), axis=1, kind="stable")[:, : min(k, len(Y))]


def cumulative_counts(runs: RunBatches, ids: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """float64 [R, K, k]: how many examples of each cluster every run trained on up to each recorded step.

    ``ids`` (sorted) and ``labels`` give each training id's cluster; every id in the batches must be there.
    """
    b = runs.batches  # [R, T, B]
    pos = np.searchsorted(ids, b).clip(max=max(len(ids) - 1, 0))
    valid = b >= 0
    cluster = np.where(valid, labels[pos] if len(ids) else 0, -1)
    per_step = (cluster[..., None] == np.arange(k)).sum(axis=2).astype(np.float64)  # [R, T, k]
    cum = np.concatenate([np.zeros((b.shape[0], 1, k)), per_step.cumsum(axis=1)], axis=1)
    return cum[:, runs.steps, :]


def ridge(X: np.ndarray, D: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per recorded step, ridge of D [R, n, K] on X [R, K, k], shared by the test examples.

    Returns (x_mean [K, k], d_mean [n, K], W [K, k, n]); predict with :func:`ridge_predict`.
    ``lam`` is relative: it multiplies the mean diagonal of each step's Gram matrix.
    """
    x_mean, d_mean = X.mean(axis=0), D.mean(axis=0)
    xc, dc = X - x_mean[None], D - d_mean[None]
    gram = np.einsum("rkg,rkh->kgh", xc, xc)  # [K, k, k]
    scale = np.trace(gram, axis1=1, axis2=2) / gram.shape[1]
    gram = gram + (lam * np.maximum(scale, 1e-12))[:, None, None] * np.eye(gram.shape[1])[None]
    rhs = np.einsum("rkg,rnk->kgn", xc, dc)
    return x_mean, d_mean, np.linalg.solve(gram, rhs)


def ridge_predict(model: tuple[np.ndarray, np.ndarray, np.ndarray], X: np.ndarray) -> np.ndarray:
    """[R, n, K] deviations of runs with features X [R, K, k]."""
    x_mean, d_mean, W = model
    return d_mean[None] + np.einsum("rkg,kgn->rnk", X - x_mean[None], W)
