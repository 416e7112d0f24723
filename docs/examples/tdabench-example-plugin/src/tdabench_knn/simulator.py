"""``knn``: an additive simulator whose factors are averaged observed changes, shared with
nearest neighbours for examples it never saw.

Fit: every observed one-step change of a test example z is credited equally to the training
examples of that step's batch; ``D[i, z]`` is the mean credit of training example i on z.
Simulate: ``y_t = y_{t-1} + sum_{i in c_t} D[i, z]``; an unseen training example borrows the
mean row of its ``k_train`` nearest fitted training examples, an unseen test example the mean
column of its ``k`` nearest fitted test examples (cosine similarity of hashed bag-of-words
features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdabench import FitData, Query, option, validate_options
from tdabench_knn.features import hashed_features, nearest


@dataclass(frozen=True)
class KNNConfig:
    """Options of ``knn``."""

    k: int = option(5, "neighbours among fitted test examples for an unseen test example", ge=1)
    k_train: int = option(3, "neighbours among fitted training examples for an unseen training example", ge=1)
    dim: int = option(512, "hashing dimension of the bag-of-words features", ge=1)

    def __post_init__(self) -> None:
        validate_options(self)  # the bounds above, checked however the config is built


class KNNSimulator:
    """See the module docstring."""

    def __init__(self, config: KNNConfig) -> None:
        self.config = config

    def fit(self, data: FitData) -> KNNSimulator:
        R, n, K = data.values.shape
        pos = data.train.positions(data.runs.transitions())  # [R, K-1, M]
        rows = pos.reshape(R * (K - 1), -1)
        counts = np.zeros((rows.shape[0], len(data.train)))
        valid = rows >= 0
        np.add.at(counts, (np.nonzero(valid)[0], rows[valid]), 1.0)
        share = counts / np.maximum(counts.sum(1, keepdims=True), 1.0)  # equal credit per batch member
        dy = np.diff(data.values, axis=2).transpose(0, 2, 1).reshape(R * (K - 1), n)
        seen = counts.sum(0)
        self.delta_ = (share.T @ dy) / np.maximum(seen, 1.0)[:, None]  # [n_train, n_test]
        self.train_ids_ = data.train.ids.copy()
        self.test_ids_ = data.test.ids.copy()
        self.train_feats_ = hashed_features(data.train.texts, self.config.dim)
        self.test_feats_ = hashed_features(data.test.texts, self.config.dim)
        return self

    def _rows(self, ids: np.ndarray, texts: tuple[str, ...], fitted_ids: np.ndarray, fitted_feats: np.ndarray, k: int) -> np.ndarray:
        """int [n, k]: fitted rows standing for each id (itself if fitted, else neighbours)."""
        pos = np.searchsorted(fitted_ids, ids).clip(max=len(fitted_ids) - 1)
        known = fitted_ids[pos] == ids
        out = np.repeat(pos[:, None], k, axis=1)
        if (~known).any():
            feats = hashed_features([t for t, kn in zip(texts, known) if not kn], self.config.dim)
            nn = nearest(feats, fitted_feats, k)
            out[~known] = np.pad(nn, ((0, 0), (0, k - nn.shape[1])), mode="edge")
        return out

    def simulate(self, query: Query) -> np.ndarray:
        cfg = self.config
        tr = self._rows(query.train.ids, query.train.texts, self.train_ids_, self.train_feats_, cfg.k_train)
        te = self._rows(query.test.ids, query.test.texts, self.test_ids_, self.test_feats_, cfg.k)
        # delta for every query training example x query test example: mean over both neighbour sets.
        dq = self.delta_[tr].mean(1)[:, te].mean(2)  # [n_train_q, n_test_q]
        pos = query.train.positions(query.runs.transitions())  # [R, K-1, M]
        gathered = np.where((pos >= 0)[..., None], dq[pos.clip(min=0)], 0.0)  # [R, K-1, M, n]
        steps = gathered.sum(2).transpose(0, 2, 1)  # [R, n, K-1]
        return np.concatenate([query.initial[:, :, None], query.initial[:, :, None] + np.cumsum(steps, axis=2)], axis=2)
