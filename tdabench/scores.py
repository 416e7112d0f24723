"""Scores of predicted against true trajectories, in one registry (formulas in docs/metrics.md).

A *trajectory* is what is simulated (loss, BLEU, ROUGE-L); a *score* is how a prediction of it
is judged. Every score declares its direction, its unit (what its ``n`` counts) and its
description here, so tables, leaderboards and exports never guess from a name.

Inputs are float arrays ``pred``, ``true`` and ``ref`` of shape [R, n, K]: R evaluation runs,
n test examples, K recorded steps, column 0 the initial point. ``ref`` is the batch-blind
reference (the mean trajectory of the fit runs) that ``skill_mse`` is measured against.
Benchmarks with test groups (a mixture's tasks) are scored per group and the groups averaged,
as the published FLAN tables are; the pooled value is kept as ``<score>_pooled``. The
bootstrap resamples test examples (within each group) with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import rankdata

from tdabench.errors import TDABenchError

N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0
#: Changes whenever a score's definition does: results computed under another are recomputed.
SCORING_VERSION = 2
POOLED = "_pooled"


@dataclass(frozen=True)
class Score:
    """One score: mean, std (of the per-unit values), 95% bootstrap CI and unit count.

    ``mean`` is NaN when the score is undefined everywhere (for example the Spearman
    correlation of constant predictions); ``n`` counts the units where it is defined.
    """

    mean: float
    std: float
    ci95: tuple[float, float]
    n: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; NaN becomes None."""
        def f(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        return {"mean": f(self.mean), "std": f(self.std), "ci95": [f(self.ci95[0]), f(self.ci95[1])], "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Score:
        """Inverse of :meth:`to_dict`; a malformed score is a ValueError."""
        def g(x: object) -> float:
            if x is None:
                return float("nan")
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise ValueError(f"expected a number or null, got {x!r}")
            return float(x)

        lo, hi = d["ci95"]  # type: ignore[misc]
        n = d["n"]
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(f"'n' must be an integer, got {n!r}")
        return cls(g(d["mean"]), g(d["std"]), (g(lo), g(hi)), n)


@dataclass(frozen=True)
class ScoreSpec:
    """What a score is.

    Attributes:
        name: its key in results.
        better: ``min`` (an error) or ``max`` (a correlation or a skill).
        unit: what ``n`` counts: ``trajectory`` (run x test example), ``run`` or ``example``.
        kind: ``error`` (never undefined: a non-finite value fails the cell), ``correlation``
            (undefined where a side is constant) or ``skill``.
        description: one line for ``tdabench list scores``.
    """

    name: str
    better: Literal["min", "max"]
    unit: Literal["trajectory", "run", "example"]
    kind: Literal["error", "correlation", "skill"]
    description: str


SCORES: dict[str, ScoreSpec] = {s.name: s for s in (
    ScoreSpec("mse_all_steps", "min", "trajectory", "error",
              "mean squared error over the steps after the initial point, per trajectory; mean over trajectories"),
    ScoreSpec("mae_all_steps", "min", "trajectory", "error",
              "mean absolute error over the steps after the initial point, per trajectory; mean over trajectories"),
    ScoreSpec("mse_final", "min", "trajectory", "error", "squared error at the final step; mean over trajectories"),
    ScoreSpec("mae_final", "min", "trajectory", "error", "absolute error at the final step; mean over trajectories"),
    ScoreSpec("spearman_final", "max", "run", "correlation",
              "Spearman rho across test examples at the final step, per evaluation run; mean over runs (the published rho)"),
    ScoreSpec("spearman_steps", "max", "trajectory", "correlation",
              "Spearman rho across the steps after the initial point, per trajectory; mean over trajectories"),
    ScoreSpec("skill_mse", "max", "trajectory", "skill",
              "1 - mse_all_steps / mse_all_steps of the mean trajectory of the fit runs, on the same trajectories "
              "(0: no better than ignoring the batches; paired bootstrap CI)"),
    ScoreSpec("lds_final", "max", "example", "correlation",
              "linear datamodeling score: Spearman rho across evaluation runs of predicted vs true final value, "
              "per test example; mean over test examples (undefined for batch-blind predictions)"),
)}
SCORE_NAMES: tuple[str, ...] = tuple(SCORES)


def spec(name: str) -> ScoreSpec:
    """The spec of ``name`` (a ``_pooled`` variant shares its base score's spec)."""
    return SCORES[name.removesuffix(POOLED)]


def describe_scores() -> dict[str, str]:
    """Score name -> ``(better: min|max) description``, for ``tdabench list scores``."""
    return {k: f"({'lower' if s.better == 'min' else 'higher'} is better) {s.description}" for k, s in SCORES.items()}


class OverflowingPrediction(TDABenchError):
    """A prediction whose errors are not finite numbers: the cell fails, nothing is filtered."""


def rank_corr(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along ``axis`` (average ranks for ties); NaN where either side is constant."""
    ra = rankdata(a, axis=axis)
    rb = rankdata(b, axis=axis)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    num = (ra * rb).sum(axis=axis)
    den = np.sqrt((ra * ra).sum(axis=axis) * (rb * rb).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


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
    boot = boot[np.isfinite(boot)]
    lo, hi = np.percentile(boot, [2.5, 97.5]) if boot.size else (np.nan, np.nan)
    return Score(float(defined.mean()), float(defined.std()), (float(lo), float(hi)), int(defined.size))


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n)) if n else np.zeros((n_boot, 0), dtype=np.int64)


def _scores_of_group(pred: np.ndarray, true: np.ndarray, ref: np.ndarray, idx: np.ndarray) -> tuple[dict[str, Score], dict[str, np.ndarray]]:
    """Every score of one set of test examples, and each score's bootstrap statistics [n_boot]."""
    out: dict[str, Score] = {}
    boots: dict[str, np.ndarray] = {}
    for name, fn in _PER_TRAJECTORY.items():
        per = fn(pred, true)  # [R, n]
        boots[name] = _nanmean(_nanmean(per, axis=0)[idx], axis=1)
        out[name] = _summary(per, boots[name])
    # The published rho: per run across test examples; resample examples, then correlate per run.
    fp, fy = pred[:, :, -1], true[:, :, -1]
    per_run = rank_corr(fp, fy, axis=-1)  # [R]
    boots["spearman_final"] = _nanmean(rank_corr(fp[:, idx].transpose(1, 0, 2), fy[:, idx].transpose(1, 0, 2), axis=-1), axis=1)
    out["spearman_final"] = _summary(per_run, boots["spearman_final"])
    # Skill: paired, the same resampled examples for the method and the reference.
    m = ((pred[..., 1:] - true[..., 1:]) ** 2).mean(axis=-1).mean(axis=0)  # [n]
    r = ((ref[..., 1:] - true[..., 1:]) ** 2).mean(axis=-1).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots["skill_mse"] = 1.0 - m[idx].mean(axis=1) / r[idx].mean(axis=1)
        skill = 1.0 - m.mean() / r.mean() if len(m) and r.mean() > 0 else np.nan
    per_traj = ((pred[..., 1:] - true[..., 1:]) ** 2).mean(axis=-1)
    sk = _summary(np.array([skill]), boots["skill_mse"])
    out["skill_mse"] = Score(sk.mean, float("nan"), sk.ci95, int(per_traj.size) if np.isfinite(skill) else 0)
    # LDS: per test example across evaluation runs (needs at least 3 runs to rank).
    lds = rank_corr(fp.T, fy.T, axis=-1) if pred.shape[0] >= 3 else np.full(pred.shape[1], np.nan)  # [n]
    boots["lds_final"] = _nanmean(lds[idx], axis=1)
    out["lds_final"] = _summary(lds, boots["lds_final"])
    return out, boots


def check_finite_errors(pred: np.ndarray, true: np.ndarray) -> None:
    """An :class:`OverflowingPrediction` naming how many trajectories have non-finite errors."""
    with np.errstate(over="ignore", invalid="ignore"):
        err = ((pred - true) ** 2).sum(axis=-1)
    bad = ~np.isfinite(err)
    if bad.any():
        raise OverflowingPrediction(
            f"the errors of {int(bad.sum())} of {bad.size} predicted trajectories are not finite numbers (the prediction overflows)")


def score(pred: np.ndarray, true: np.ndarray, ref: np.ndarray | None = None, **kwargs: object) -> dict[str, Score]:
    """Every score of ``pred`` against ``true`` (both [R, n, K]); see :func:`score_groups`."""
    return score_groups(pred, true, ref, **kwargs)[0]  # type: ignore[arg-type]


def score_groups(pred: np.ndarray, true: np.ndarray, ref: np.ndarray | None = None, groups: Sequence[np.ndarray] | None = None, *,
                 group_names: Sequence[str] = (), n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
                 ) -> tuple[dict[str, Score], dict[str, dict[str, Score]]]:
    """Every score of ``pred`` against ``true`` (both [R, n, K]), and the scores of each group.

    Args:
        ref: the batch-blind reference for ``skill_mse`` (default: ``pred`` itself, skill 0).
        groups: row indices of each test group; with two or more, each score is the mean
            over groups (CI from a bootstrap within each group) and ``<score>_pooled`` the
            pooled value.
        group_names: names of the groups (for the per-group scores).
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    ref = pred if ref is None else np.asarray(ref, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 3 or ref.shape != pred.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must both be [runs, tests, steps], and ref {ref.shape} the same")
    check_finite_errors(pred, true)
    n = pred.shape[1]
    pooled, pooled_boots = _scores_of_group(pred, true, ref, _resamples(n, n_boot, seed))
    groups = [np.asarray(g, dtype=np.int64) for g in (groups or []) if len(g)]
    if len(groups) < 2:
        return pooled, {}
    by_group: dict[str, dict[str, Score]] = {}
    boots_by_group = []
    for k, rows in enumerate(groups):
        s, b = _scores_of_group(pred[:, rows], true[:, rows], ref[:, rows], _resamples(len(rows), n_boot, seed + 1 + k))
        by_group[group_names[k] if k < len(group_names) else str(k)] = s
        boots_by_group.append(b)
    out: dict[str, Score] = {}
    for name in SCORE_NAMES:
        means = np.array([by_group[g][name].mean for g in by_group])
        boot = _nanmean(np.stack([b[name] for b in boots_by_group]), axis=0)
        lo, hi = np.percentile(boot[np.isfinite(boot)], [2.5, 97.5]) if np.isfinite(boot).any() else (np.nan, np.nan)
        defined = means[np.isfinite(means)]
        mean = float(defined.mean()) if defined.size else float("nan")
        std = float(defined.std()) if defined.size else float("nan")
        out[name] = Score(mean, std, (float(lo), float(hi)), sum(by_group[g][name].n for g in by_group))
        out[name + POOLED] = pooled[name]
    return out, by_group


def headroom(true: np.ndarray, ref: np.ndarray) -> dict[str, float | None]:
    """How much a split leaves to attribute, from its true trajectories [R, n, K] and the reference.

    * ``mse_reference``: ``mse_all_steps`` of the batch-blind reference (the mean trajectory).
    * ``mse_constant``: ``mse_all_steps`` of holding the initial value.
    * ``reference_over_constant``: their ratio; near 1, the runs barely move or differ beyond the mean.
    * ``around_mean_share``: the share of the runs' change from their initial values that lies
      around the evaluation runs' own mean change, ``sum (d - mean_r d)^2 / sum d^2`` with
      ``d = y_t - y_0`` over the steps after the initial point: 0 when every run moves alike
      (nothing to attribute), near 1 when runs move differently. Undefined with one run.
    """
    true = np.asarray(true, dtype=np.float64)
    d = true[..., 1:] - true[..., :1]
    mse_ref = float(((np.asarray(ref)[..., 1:] - true[..., 1:]) ** 2).mean()) if d.size else float("nan")
    mse_const = float((d**2).mean()) if d.size else float("nan")
    total = float((d**2).sum())
    share = float(((d - d.mean(axis=0, keepdims=True)) ** 2).sum() / total) if true.shape[0] >= 2 and total > 0 else float("nan")

    def f(x: float) -> float | None:
        return x if np.isfinite(x) else None

    ratio = mse_ref / mse_const if mse_const > 0 else float("nan")
    return {"mse_reference": f(mse_ref), "mse_constant": f(mse_const), "reference_over_constant": f(ratio), "around_mean_share": f(share)}
