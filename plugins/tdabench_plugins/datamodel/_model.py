"""The cluster datamodel: a batch-aware baseline that knows only which kind of example a run trained on, and when.

Datamodels (Ilyas et al. 2022) regress a model's output on which training examples it saw.
With tens of runs, one coefficient per example cannot be fitted, so this one works with kinds:

1. Each training example is featurized by the frozen encoder (``plugins/tdabench_plugins/encoder.py``)
   as ``[unit(emb(prompt)), unit(emb(target)), w * standardized log(1 + word counts of prompt and target)]``
   and the examples are clustered by seeded k-means.
2. A run is described at each recorded step by the cumulative count of each cluster it trained
   on so far (``log(1 + count)`` by default: repeating a kind of example helps less and less).
3. Per recorded step, one ridge regression, shared design and one column per test example,
   maps those counts to the deviation from the zero line of the fit runs.
4. The length weight ``w``, the number of clusters and the ridge strength are chosen together by
   cross-validation over the fit runs (folds by run), plus the validation runs when there are any.

A prediction is the zero line plus the regression: with no usable signal it is the zero
line. A test example the fit did not see takes the zero lines and the weights of its nearest
fitted test examples (averaged), from its own initial value. Equations and options: docs/methods.md, section "Cluster datamodel".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tdabench import (
    ExampleSet,
    FitData,
    ZeroLine,
    Query,
    RunBatches,
    fitted_values,
    guard_range,
    guarded,
    option,
    residual_values,
    validate_options,
)
from tdabench_plugins.datamodel._solve import cumulative_counts, kmeans, nearest, nearest_rows, ridge, ridge_predict
from tdabench_plugins.encoder import POOLINGS, TextEncoder

COUNTS: tuple[str, ...] = ("log", "linear")


@dataclass(frozen=True)
class ClusterDatamodelConfig:
    """Options of the cluster datamodel (docs/methods.md)."""

    clusters: tuple[int, ...] = option((2, 3, 4, 6, 8, 12), "numbers of clusters tried (at most the number of training examples)", ge=1, nonempty=True)
    lambdas: tuple[float, ...] = option((1e-3, 1e-2, 1e-1, 1.0, 10.0), "ridge strengths tried, relative to the mean diagonal of each step's Gram matrix", gt=0, nonempty=True)
    counts: str = option("log", "features of a run: log (log(1 + cumulative count) per cluster) or linear (the count)", COUNTS)
    length_weights: tuple[float, ...] = option((0.0, 0.25, 0.5, 1.0, 2.0), "weights tried for the standardized log word counts of prompt and "
                                               "target beside the unit-norm embeddings (chosen with clusters and lambda)", ge=0, nonempty=True)
    folds: int = option(5, "cross-validation folds over the fit runs (by run)", ge=2)
    clip: bool = option(True, "clip the returned predictions to the fitted value range widened by its span on each side, "
                        "and at 0 when no fitted value is negative")
    neighbors: int = option(5, "a test example the fit did not see takes the mean change and weights of this many nearest fitted test examples (features as for training examples)", ge=1)
    encoder: str = option("all-MiniLM-L6-v2", "frozen text encoder: the packaged default, a local directory or a hub id")
    pooling: str = option("mean", "pooling of the encoder's last hidden states", POOLINGS)
    max_length: int = option(128, "tokens per text given to the encoder", ge=2)
    encode_batch_size: int = option(64, "texts per encoder forward pass", ge=1)

    def __post_init__(self) -> None:
        validate_options(self)


class ClusterDatamodel:
    """Mean trajectory plus a per-step ridge on cumulative cluster counts.

    Learned state (set by :meth:`fit`): ``mean_``, ``encoder_``, ``train_ids_`` and
    ``labels_`` (each fitted training example's cluster), ``centroids_``, ``length_stats_``,
    ``weight_`` (the length weight), ``k_``, ``lambda_``, ``cv_mse_`` ({(weight, k, lambda): cross-validated MSE}), ``model_`` (the ridge),
    ``steps_`` (the recorded steps it predicts), ``guard_`` (the clip of returned predictions),
    ``test_ids_`` and ``test_features_`` (to stand in for a test example the fit did not see by
    its nearest fitted ones).
    """

    def __init__(self, config: ClusterDatamodelConfig) -> None:
        self.config = config

    # -- features ------------------------------------------------------------------------
    def _features(self, examples: ExampleSet, weight: float | None = None) -> np.ndarray:
        parts = []
        for texts in (examples.prompts, examples.targets):
            e = self.encoder_.embed(list(texts)).astype(np.float64)
            parts.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
        mu, sd = self.length_stats_
        parts.append((self.weight_ if weight is None else weight) * (_log_words(examples) - mu) / sd)
        return np.concatenate(parts, axis=1)

    def _run_features(self, runs: RunBatches, ids: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
        x = cumulative_counts(runs, ids, labels, k)
        return np.log1p(x) if self.config.counts == "log" else x

    # -- fitting -------------------------------------------------------------------------
    def fit(self, data: FitData) -> ClusterDatamodel:
        """Cluster the training examples, choose (length weight, clusters, lambda) by cross-validation, fit the ridge."""
        cfg = self.config
        self.mean_ = ZeroLine.fit(data)
        self.guard_ = guard_range(fitted_values(data)) if cfg.clip else None
        self.steps_ = np.array(data.runs.steps, copy=True)
        self.encoder_ = TextEncoder(cfg.encoder, cfg.pooling, cfg.max_length, cfg.encode_batch_size, data.cache_dir, data.device)
        train = data.train
        words = _log_words(train)
        self.length_stats_ = (words.mean(axis=0), np.maximum(words.std(axis=0), 1e-9))
        dev = residual_values(self.mean_, data.values, data.test.ids)
        dev_val = residual_values(self.mean_, data.validation_values, data.test.ids)
        rng = np.random.default_rng(data.seed)
        folds = np.array_split(rng.permutation(len(data.runs)), min(cfg.folds, len(data.runs))) if len(data.runs) >= 2 else []
        ks = sorted({k for k in cfg.clusters if k <= len(train)}) or [1]
        self.cv_mse_: dict[tuple[float, int, float], float] = {}
        clusterings: dict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = {}
        for w in dict.fromkeys(float(v) for v in cfg.length_weights):
            feats = self._features(train, w)
            for k in ks:
                labels, centroids = kmeans(feats, k, seed=data.seed) if k > 1 else (np.zeros(len(train), np.int64), feats.mean(axis=0, keepdims=True))
                clusterings[(w, k)] = (labels, centroids)
                X = self._run_features(data.runs, train.ids, labels, k)
                Xv = self._run_features(data.validation, train.ids, labels, k) if len(data.validation) else None
                for lam in cfg.lambdas:
                    self.cv_mse_[(w, k, float(lam))] = _cv_mse(X, dev, Xv, dev_val, folds, float(lam))
        # Lowest error; ties (and all-NaN) to fewer clusters, then stronger ridge, then the smaller length weight.
        key = {c: (v if math.isfinite(v) else math.inf, c[1], -c[2], c[0]) for c, v in self.cv_mse_.items()}
        self.weight_, self.k_, self.lambda_ = min(key, key=key.__getitem__)
        self.labels_, self.centroids_ = clusterings[(self.weight_, self.k_)]
        self.train_ids_ = np.array(train.ids, copy=True)
        self.test_ids_ = np.array(data.test.ids, copy=True)
        self.test_features_ = self._features(data.test)
        self.model_ = ridge(self._run_features(data.runs, self.train_ids_, self.labels_, self.k_), dev, self.lambda_)
        return self

    # -- simulation ----------------------------------------------------------------------
    def simulate(self, query: Query) -> np.ndarray:
        """The zero line plus the ridge prediction of every query run; float64 [R, n, K]."""
        if not np.array_equal(query.runs.steps, self.steps_):
            raise ValueError(f"the cluster datamodel predicts the recorded steps of its fit runs ({len(self.steps_)} of them); "
                             f"this query records {len(query.runs.steps)} other steps")
        ids, labels = self._labels_for(query)
        rows, d_mean, W = self._test_parts(query.test)
        dev = ridge_predict((self.model_[0], d_mean, W), self._run_features(query.runs, ids, labels, self.k_))
        return guarded(self.mean_.predict_rows(query.initial, rows) + dev, self.guard_)

    def _test_parts(self, test: ExampleSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(zero-line rows [n, m], ridge intercept [n, K], weights [K, k, n]) of each query test
        example: its own if fitted, else those of its nearest fitted test examples (averaged)."""
        _, d_mean, W = self.model_
        pos = np.searchsorted(self.test_ids_, test.ids).clip(max=max(len(self.test_ids_) - 1, 0))
        known = self.test_ids_[pos] == test.ids
        rows = pos[:, None]
        if (~known).any():
            near = nearest_rows(self._features(test.subset(test.ids[~known])), self.test_features_, self.config.neighbors)
            rows = np.repeat(pos[:, None], near.shape[1], axis=1)
            rows[~known] = near
        # Each query test example averages its rows: one row (itself) if fitted, else its neighbours.
        return rows, d_mean[rows].mean(axis=1), W[:, :, rows].mean(axis=3)

    def _labels_for(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """(sorted ids, cluster of each) covering every id of the query's batches; a training
        example the fit never saw goes to its nearest centroid."""
        used = np.unique(query.runs.batches)
        used = used[used >= 0]
        pos = np.searchsorted(self.train_ids_, used).clip(max=max(len(self.train_ids_) - 1, 0))
        seen = self.train_ids_[pos] == used if len(self.train_ids_) else np.zeros(len(used), bool)
        labels = np.empty(len(used), dtype=np.int64)
        labels[seen] = self.labels_[pos[seen]]
        if (~seen).any():
            new = used[~seen]
            if not np.isin(new, query.train.ids).all():
                raise ValueError(f"the query's batches use training ids without texts: {new[~np.isin(new, query.train.ids)][:5].tolist()}")
            labels[~seen] = nearest(self._features(query.train.subset(new)), self.centroids_)
        return used, labels

    def fit_info(self) -> dict[str, Any]:
        """What fitting chose: length weight, clusters, lambda, their sizes, and the cross-validated MSE grid."""
        return {
            "length_weight": self.weight_,
            "clusters": self.k_,
            "lambda": self.lambda_,
            "cluster_sizes": np.bincount(self.labels_, minlength=self.k_).tolist(),
            "cv_mse": {f"w={w:g},k={k},lambda={lam:g}": (v if math.isfinite(v) else None) for (w, k, lam), v in self.cv_mse_.items()},
        }


def _log_words(examples: ExampleSet) -> np.ndarray:
    """float64 [n, 2]: log(1 + words) of each example's prompt and target."""
    counts = [[len(p.split()), len(t.split())] for p, t in zip(examples.prompts, examples.targets)]
    return np.log1p(np.array(counts, dtype=np.float64).reshape(-1, 2))


def _cv_mse(X: np.ndarray, dev: np.ndarray, Xv: np.ndarray | None, dev_val: np.ndarray, folds: list[np.ndarray], lam: float) -> float:
    """Mean squared error of the deviation after the initial point: held-out folds of the fit
    runs (each predicted by the ridge on the other folds), then the validation runs (by the ridge
    on every fit run)."""
    sse, count = 0.0, 0
    for held in folds:
        rest = np.setdiff1d(np.arange(len(X)), held)
        if len(rest) == 0:
            continue
        err = ridge_predict(ridge(X[rest], dev[rest], lam), X[held]) - dev[held]
        sse += float((err[..., 1:] ** 2).sum())
        count += err[..., 1:].size
    if Xv is not None and len(Xv):
        err = ridge_predict(ridge(X, dev, lam), Xv) - dev_val
        sse += float((err[..., 1:] ** 2).sum())
        count += err[..., 1:].size
    return sse / count if count else math.nan
