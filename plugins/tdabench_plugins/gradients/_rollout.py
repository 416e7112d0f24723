"""The simulator form shared by TracIn-CP, Grad-Dot and influence functions, and calibration.

Every gradient method is an additive Simfluence model whose factor comes from a score table
``S[c, i, z]`` (checkpoint c, training example i, test example z; positive means "lowers the
test loss")::

    y_t = y_{t-1} - s * eta_t / |c_t| * sum_{i in c_t} S[c(t), i, z]      (batch-mean loss)
    y_t = y_{t-1} - s * eta_t * sum_{i in c_t} S[c(t), i, z]              (batch-sum loss)

with ``c(t)`` the latest checkpoint at or before step t - 1 (the weights the update of step t was
taken at), ``eta_t`` the recorded learning rate
and ``s`` the global scale (1 when raw, least squares on the fit runs when calibrated).
A transition spanning several steps sums their per-step changes.
"""

from __future__ import annotations

import numpy as np

from tdabench import RunBatches


def filled_lr(lr: np.ndarray) -> tuple[np.ndarray, str | None]:
    """float64 [R, T] learning rates with gaps filled: a NaN step takes its run's mean, a run
    with none known takes the mean of the others, and with none known at all 1.0 (then only
    the calibrated variant has a meaningful scale)."""
    lr = np.array(lr, dtype=np.float64)
    if lr.size == 0:
        return lr, None
    if not np.isfinite(lr).any():
        return np.ones_like(lr), "no learning rate recorded: eta = 1 (raw scale is arbitrary)"
    with np.errstate(all="ignore"):
        run_mean = np.nanmean(np.where(np.isfinite(lr), lr, np.nan), axis=1)
    run_mean = np.where(np.isfinite(run_mean), run_mean, np.nanmean(run_mean))
    out = np.where(np.isfinite(lr), lr, run_mean[:, None])
    return out, None if np.isfinite(lr).all() else "some learning rates missing: filled with the run mean"


def step_deltas(
    scores: np.ndarray,
    train_ids: np.ndarray,
    runs: RunBatches,
    ckpt_index: np.ndarray,
    lr: np.ndarray,
    reduction: str,
) -> np.ndarray:
    """float64 [R, T, n]: each step's predicted change of every test example's loss, unscaled.

    Args:
        scores: [C, n_train, n] score table, rows in ``train_ids`` order.
        train_ids: sorted ids of the table's rows; every id in ``runs.batches`` must be here.
        runs: the runs' batches [R, T, B].
        ckpt_index: int [T], the checkpoint (table index) serving each step.
        lr: [R, T] learning rates (no NaN).
        reduction: "mean" (divide by the batch size) or "sum".
    """
    batches = runs.batches
    pos = np.searchsorted(train_ids, batches).clip(max=max(len(train_ids) - 1, 0))
    valid = batches >= 0
    if len(train_ids) == 0:
        if valid.any():
            raise ValueError("score table has no training rows but the runs use training examples")
    elif np.any(valid & (train_ids[pos] != batches)):
        missing = np.unique(batches[valid & (train_ids[pos] != batches)])
        raise ValueError(f"no scores for training ids {missing[:5].tolist()}")
    R, T, B = batches.shape
    n = scores.shape[2]
    acc = np.zeros((R, T, n))
    c = np.broadcast_to(np.asarray(ckpt_index)[None, :T], (R, T))
    for b in range(B):  # batch slots only: vectorized over runs, steps and test examples
        acc += np.where(valid[:, :, b, None], scores[c, pos[:, :, b]] if len(train_ids) else 0.0, 0.0)
    count = valid.sum(-1)
    factor = -lr / np.maximum(count, 1) if reduction == "mean" else -lr
    return acc * np.where(count > 0, factor, 0.0)[:, :, None]


def rollout(deltas: np.ndarray, steps: np.ndarray, initial: np.ndarray, scale: float) -> np.ndarray:
    """float64 [R, n, K]: ``initial`` plus ``scale`` times the summed step changes up to each
    recorded step (column 0 is exactly ``initial``)."""
    R, T, n = deltas.shape
    csum = np.concatenate([np.zeros((R, 1, n)), np.cumsum(deltas, axis=1)], axis=1)  # [R, T+1, n]
    steps = np.asarray(steps, dtype=np.int64)
    moved = csum[:, steps, :] - csum[:, steps[:1], :]  # [R, K, n]
    return initial[:, :, None] + scale * moved.transpose(0, 2, 1)


def least_squares_scale(predicted_drop: np.ndarray, true_drop: np.ndarray) -> float:
    """The global ``s`` minimizing ``sum (true - s * predicted)^2`` (0 when nothing is predicted)."""
    p = np.asarray(predicted_drop, dtype=np.float64).ravel()
    t = np.asarray(true_drop, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(t)
    denom = float(p[ok] @ p[ok])
    return float(p[ok] @ t[ok]) / denom if denom > 0 else 0.0


def mse_after_initial(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error over the steps after the initial point (the benchmark's all-steps MSE)."""
    if pred.size == 0 or pred.shape[2] < 2:
        return 0.0
    return float(np.mean((pred[:, :, 1:] - truth[:, :, 1:]) ** 2))
