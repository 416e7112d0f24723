"""Computing the scores of :mod:`tdabench.scores`: point values, per-group values and intervals.

Intervals come from one seeded two-way bootstrap: evaluation runs and test examples drawn with
replacement together (a run is drawn whole, and with test groups the same runs serve every
group while examples are drawn within each group), the same draws for the method and the
reference, so skill is paired. Formulas: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tdabench.scores import (
    BOOTSTRAP_SEED,
    N_BOOTSTRAP,
    POOLED,
    OverflowingPrediction,
    Score,
    phase_slices,
    rank_corr,
)

# Per-trajectory values [R, n] of each trajectory score.
_PER_TRAJECTORY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mse_all_steps": lambda p, y: ((p[..., 1:] - y[..., 1:]) ** 2).mean(axis=-1),
    "mae_all_steps": lambda p, y: np.abs(p[..., 1:] - y[..., 1:]).mean(axis=-1),
    "mse_final": lambda p, y: (p[..., -1] - y[..., -1]) ** 2,
    "mae_final": lambda p, y: np.abs(p[..., -1] - y[..., -1]),
    "spearman_steps": lambda p, y: rank_corr(p[..., 1:], y[..., 1:], axis=-1),
}


def _nanmean(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x)
        total = np.where(ok, x, 0.0).sum(axis=axis)
        count = ok.sum(axis=axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _summary(values: np.ndarray, boot: np.ndarray) -> Score:
    """Mean and std of the defined values, CI from the finite bootstrap statistics."""
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return Score(float("nan"), float("nan"), (float("nan"), float("nan")), 0)
    return Score(float(defined.mean()), float(defined.std()), _interval(boot), int(defined.size))


def _interval(boot: np.ndarray) -> tuple[float, float]:
    boot = boot[np.isfinite(boot)]
    if not boot.size:
        return float("nan"), float("nan")
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Resample:
    """One two-way bootstrap: evaluation runs and test examples drawn with replacement together.

    Attributes:
        runs: int [B, R], the runs of each replicate (shared by every test group: runs are whole).
        examples: int [B, n], the test examples of each replicate (drawn within each group).
    """

    runs: np.ndarray
    examples: np.ndarray

    def counts(self, n_runs: int, n_examples: int) -> tuple[np.ndarray, np.ndarray]:
        """How often each run [B, R] and each example [B, n] is drawn."""
        b = len(self.runs)
        w = np.zeros((b, n_runs))
        np.add.at(w, (np.arange(b)[:, None], self.runs), 1.0)
        v = np.zeros((b, n_examples))
        np.add.at(v, (np.arange(b)[:, None], self.examples), 1.0)
        return w, v


def resample(n_runs: int, n_examples: int, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> Resample:
    """A seeded two-way bootstrap of ``n_runs`` runs and ``n_examples`` examples."""
    rng = np.random.default_rng(seed)
    return Resample(rng.integers(0, n_runs, size=(n_boot, n_runs)), rng.integers(0, n_examples, size=(n_boot, n_examples)))


def _weighted_mean(per: np.ndarray, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[B]: the mean of ``per`` [R, n] under run counts ``w`` [B, R] and example counts ``v`` [B, n] (NaN left out)."""
    ok = np.isfinite(per)
    num = np.einsum("br,rn,bn->b", w, np.where(ok, per, 0.0), v)
    den = np.einsum("br,rn,bn->b", w, ok.astype(np.float64), v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class _Parts:
    """What a set of test examples contributes: each score's point value and replicates, and the
    mean squared errors (method and reference, overall and per phase) skill is built from."""

    scores: dict[str, Score]
    boots: dict[str, np.ndarray]
    mse: dict[str, tuple[float, float, np.ndarray, np.ndarray]]  # phase -> (method, reference, replicates of each)


def _parts(pred: np.ndarray, true: np.ndarray, ref: np.ndarray, rs: Resample) -> _Parts:
    """Every score of one set of test examples under one two-way bootstrap."""
    R, n, K = pred.shape
    w, v = rs.counts(R, n)
    out: dict[str, Score] = {}
    boots: dict[str, np.ndarray] = {}
    for name, fn in _PER_TRAJECTORY.items():
        per = fn(pred, true)  # [R, n]
        boots[name] = _weighted_mean(per, w, v)
        out[name] = _summary(per, boots[name])
    # The published rho: per run across test examples; resampled examples, then the runs weighted.
    fp, fy = pred[:, :, -1], true[:, :, -1]
    per_run = rank_corr(fp, fy, axis=-1)  # [R]
    rho = rank_corr(fp[:, rs.examples].transpose(1, 0, 2), fy[:, rs.examples].transpose(1, 0, 2), axis=-1)  # [B, R]
    ok = np.isfinite(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots["spearman_final"] = (np.where(ok, rho, 0.0) * w).sum(1) / (ok * w).sum(1)
    out["spearman_final"] = _summary(per_run, boots["spearman_final"])
    # LDS: per test example across evaluation runs (at least 3 to rank); resampled runs, then the examples weighted.
    if R >= 3:
        lds = rank_corr(fp.T, fy.T, axis=-1)  # [n]
        across = rank_corr(fp[rs.runs].transpose(0, 2, 1), fy[rs.runs].transpose(0, 2, 1), axis=-1)  # [B, n]
        okl = np.isfinite(across)
        with np.errstate(invalid="ignore", divide="ignore"):
            boots["lds_final"] = (np.where(okl, across, 0.0) * v).sum(1) / (okl * v).sum(1)
    else:
        lds, boots["lds_final"] = np.full(n, np.nan), np.full(len(rs.runs), np.nan)
    out["lds_final"] = _summary(lds, boots["lds_final"])
    mse: dict[str, tuple[float, float, np.ndarray, np.ndarray]] = {}
    for phase, cols in {"all": slice(1, K), **phase_slices(K)}.items():
        if cols.stop - cols.start < 1:  # a phase with no steps (very short trajectories): undefined
            nan = np.full(len(rs.runs), np.nan)
            mse[phase] = (float("nan"), float("nan"), nan, nan)
            continue
        m = ((pred[..., cols] - true[..., cols]) ** 2).mean(axis=-1)
        r = ((ref[..., cols] - true[..., cols]) ** 2).mean(axis=-1)
        mse[phase] = (float(m.mean()), float(r.mean()), _weighted_mean(m, w, v), _weighted_mean(r, w, v))
    return _Parts(out, boots, mse)


def _skill(method: float | np.ndarray, reference: float | np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.asarray(reference) > 0, 1.0 - np.asarray(method) / np.asarray(reference), np.nan)


def _add_skills(out: dict[str, Score], groups: Sequence[_Parts], n_traj: int) -> None:
    """Skill over all steps and per phase, from the group-averaged MSEs (one group: the pooled ones)."""
    for phase in groups[0].mse:
        name = "skill_mse" if phase == "all" else f"skill_mse_{phase}"
        m = float(np.mean([g.mse[phase][0] for g in groups]))
        r = float(np.mean([g.mse[phase][1] for g in groups]))
        boot = _skill(np.mean([g.mse[phase][2] for g in groups], axis=0), np.mean([g.mse[phase][3] for g in groups], axis=0))
        point = float(_skill(m, r))
        out[name] = Score(point, float("nan"), _interval(boot), n_traj if np.isfinite(point) else 0)


def check_finite_errors(pred: np.ndarray, true: np.ndarray) -> None:
    """An :class:`OverflowingPrediction` naming how many trajectories have non-finite errors."""
    with np.errstate(over="ignore", invalid="ignore"):
        err = ((pred - true) ** 2).sum(axis=-1)
    bad = ~np.isfinite(err)
    if bad.any():
        raise OverflowingPrediction(
            f"the errors of {int(bad.sum())} of {bad.size} predicted trajectories are not finite numbers (the prediction overflows)")


def score(pred: np.ndarray, true: np.ndarray, ref: np.ndarray | None = None, **kwargs: Any) -> dict[str, Score]:
    """Every score of ``pred`` against ``true`` (both [R, n, K]); see :func:`score_groups`."""
    return score_groups(pred, true, ref, **kwargs)[0]


def score_groups(pred: np.ndarray, true: np.ndarray, ref: np.ndarray | None = None, groups: Sequence[np.ndarray] | None = None, *,
                 group_names: Sequence[str] = (), n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
                 ) -> tuple[dict[str, Score], dict[str, dict[str, Score]]]:
    """Every score of ``pred`` against ``true`` (both [R, n, K]), and the scores of each group.

    Intervals come from one two-way bootstrap (docs/metrics.md): evaluation runs and test
    examples drawn together, the same draws for the method and the reference (paired skill).

    Args:
        ref: the batch-blind reference for the skill scores (the zero line; default ``pred``
            itself, skill 0).
        groups: row indices of each test group; with two or more, each score is the mean over
            groups, skill is ``1 - mean_g MSE_g / mean_g MSE_ref,g`` (the same MSEs the row shows),
            and ``<score>_pooled`` keeps the value over all test examples pooled.
        group_names: names of the groups (for the per-group scores).
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    ref = pred if ref is None else np.asarray(ref, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 3 or ref.shape != pred.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must both be [runs, tests, steps], and ref {ref.shape} the same")
    check_finite_errors(pred, true)
    R, n, _ = pred.shape
    rs = resample(R, n, n_boot, seed)
    pooled = _parts(pred, true, ref, rs)
    pooled_scores = dict(pooled.scores)
    _add_skills(pooled_scores, [pooled], R * n)
    groups = [np.asarray(g, dtype=np.int64) for g in (groups or []) if len(g)]
    if len(groups) < 2:
        return pooled_scores, {}
    by_group: dict[str, dict[str, Score]] = {}
    parts = []
    for k, rows in enumerate(groups):
        # The runs drawn are the pooled draw's (a run is whole); examples are drawn within the group.
        sub = Resample(rs.runs, np.random.default_rng(seed + 1 + k).integers(0, len(rows), size=(n_boot, len(rows))))
        part = _parts(pred[:, rows], true[:, rows], ref[:, rows], sub)
        g_scores = dict(part.scores)
        _add_skills(g_scores, [part], R * len(rows))
        by_group[group_names[k] if k < len(group_names) else str(k)] = g_scores
        parts.append(part)
    out: dict[str, Score] = {}
    for name in part.scores:
        means = np.array([p.scores[name].mean for p in parts])
        boot = _nanmean(np.stack([p.boots[name] for p in parts]), axis=0)
        defined = means[np.isfinite(means)]
        out[name] = Score(float(defined.mean()) if defined.size else float("nan"), float(defined.std()) if defined.size else float("nan"),
                          _interval(boot), sum(p.scores[name].n for p in parts))
    _add_skills(out, parts, R * n)
    for name, s in pooled_scores.items():
        out[name + POOLED] = s
    return out, by_group


