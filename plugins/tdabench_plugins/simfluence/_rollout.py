"""Autoregressive rollout of Simfluence-Linear, batched over runs and test examples.

Per transition the factors only enter through their sums over the transition's ids,
``SA = sum_{i in c_t} A_iz`` and ``SB = sum_{i in c_t} B_iz``; for every run and transition at
once those are one sparse product of occurrence counts with A and B. The rollout is then a
loop over the K recorded steps of ``y = SA * y + SB``, vectorized over runs x test examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tdabench import RunBatches
from tdabench_plugins.simfluence._design import UNSEEN, count_matrix, id_positions


@dataclass(frozen=True, eq=False)
class QueryTransitions:
    """The transitions of a set of runs, as counts over the fitted training examples.

    Attributes:
        counts: [R * (K-1), n_train] sparse occurrence counts of fitted examples.
        unseen: float64 [R * (K-1)], how many ids of each transition were not fitted.
        empty: bool [R * (K-1)], transitions without any id.
        shape: (R, K-1).
    """

    counts: sp.csr_matrix
    unseen: np.ndarray
    empty: np.ndarray
    shape: tuple[int, int]


def query_transitions(runs: RunBatches, train_ids: np.ndarray) -> QueryTransitions:
    """Count, per transition of ``runs``, each fitted training example and the unseen ids."""
    ids = runs.transitions()
    R, K1, M = ids.shape
    pos = id_positions(ids, train_ids).reshape(R * K1, M)
    return QueryTransitions(
        counts=count_matrix(pos, len(train_ids)),
        unseen=(pos == UNSEEN).sum(axis=1).astype(np.float64),
        empty=(pos == -1).all(axis=1),
        shape=(R, K1),
    )


def factor_sums(
    qt: QueryTransitions, A: np.ndarray | None, B: np.ndarray | None, a_unseen: np.ndarray, b_unseen: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(SA, SB), float64 [R, K-1, n_test]: the factor sums of every transition.

    ``A is None`` means the multiplicative part is exactly 1 (additive variant); ``B is None``
    means no additive part (multiplicative variant). Each unseen id adds ``a_unseen`` [n_test]
    to SA and ``b_unseen`` to SB; a transition without ids leaves the value unchanged.
    """
    R, K1 = qt.shape
    n_test = len(a_unseen)
    if A is None:
        SA = np.ones((R * K1, n_test))
    else:
        SA = np.asarray(qt.counts @ A) + qt.unseen[:, None] * a_unseen[None, :]
        SA[qt.empty] = 1.0
    if B is None:
        SB = np.zeros((R * K1, n_test))
    else:
        SB = np.asarray(qt.counts @ B) + qt.unseen[:, None] * b_unseen[None, :]
    return SA.reshape(R, K1, n_test), SB.reshape(R, K1, n_test)


def rollout(SA: np.ndarray, SB: np.ndarray, initial: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """float64 [R, n_test, K]: y_0 = initial, y_k = SA_k y_{k-1} + SB_k, clipped to ``bounds``."""
    R, K1, n = SA.shape
    out = np.empty((R, n, K1 + 1))
    y = np.array(initial, dtype=np.float64, copy=True)
    out[:, :, 0] = y
    for k in range(K1):  # the only Python loop: over recorded steps
        y = SA[:, k] * y + SB[:, k]
        if bounds is not None:
            np.clip(y, bounds[0], bounds[1], out=y)
        out[:, :, k + 1] = y
    return out


def rollout_mse(pred: np.ndarray, truth: np.ndarray) -> float:
    """The protocol's all-steps MSE: mean over steps after the first, then over trajectories.

    Non-finite truth values are left out; a non-finite prediction makes the score infinite.
    """
    p, t = pred[..., 1:], truth[..., 1:]
    ok = np.isfinite(t)
    if not np.isfinite(p[ok]).all():
        return float("inf")
    sq = np.where(ok, (p - np.where(ok, t, 0.0)) ** 2, 0.0)
    per = sq.sum(axis=-1) / np.maximum(ok.sum(axis=-1), 1)
    has = ok.any(axis=-1)
    return float(per[has].mean()) if has.any() else float("nan")
