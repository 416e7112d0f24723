"""Scores of predicted against true trajectories, in one registry (formulas in docs/metrics.md).

A *trajectory* is what is simulated (loss, BLEU, ROUGE-L); a *score* is how a prediction of it
is judged. Every score declares its direction, its unit (what its ``n`` counts) and its
description here, so tables, leaderboards and exports never guess from a name.

Inputs are float arrays ``pred``, ``true`` and ``ref`` of shape [R, n, K]: R evaluation runs,
n test examples, K recorded steps, column 0 the initial point. ``ref`` is the batch-blind
reference (the zero line of the fit runs, :class:`tdabench.ZeroLine`) that the skill scores
are measured against. Benchmarks with test groups (a mixture's tasks) are scored per group and
the groups averaged, as the published FLAN tables are (skill from the group-averaged MSEs); the
pooled value is kept as ``<score>_pooled``. Intervals come from a seeded two-way bootstrap that
draws evaluation runs and test examples together, paired for skill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata

from tdabench.errors import TDABenchError

N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0
#: Changes whenever a score's definition does: results computed under another are recomputed.
#: 3: the zero line as reference, two-way bootstrap, skill from group-averaged MSEs, phase skills.
SCORING_VERSION = 3
POOLED = "_pooled"
#: The phases of a trajectory that skill is also reported on (shares of the steps after the initial one).
PHASES = {"early": 0.1, "mid": 0.5, "late": 1.0}
#: ``lds_final`` correlates across evaluation runs: with fewer it is reported, marked low-power, and not ranked.
LDS_MIN_RUNS = 10


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
              "1 - mse_all_steps / mse_all_steps of the zero line (the strongest batch-blind predictor of the fit runs), "
              "on the same trajectories; with test groups, from the group-averaged MSEs (0: no better than ignoring the batches)"),
    ScoreSpec("skill_mse_early", "max", "trajectory", "skill", "skill_mse over the first 10% of the steps after the initial one"),
    ScoreSpec("skill_mse_mid", "max", "trajectory", "skill", "skill_mse over the rest of the first half of the steps"),
    ScoreSpec("skill_mse_late", "max", "trajectory", "skill", "skill_mse over the second half of the steps"),
    ScoreSpec("lds_final", "max", "example", "correlation",
              "linear datamodeling score: Spearman rho across evaluation runs of predicted vs true final value, "
              f"per test example; mean over test examples (undefined for batch-blind predictions; low-power and not ranked "
              f"with fewer than {LDS_MIN_RUNS} evaluation runs)"),
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


def phase_slices(n_steps: int) -> dict[str, slice]:
    """The columns of each phase of a trajectory of ``n_steps`` recorded steps (column 0 initial):
    ``early`` the first 10% of the steps after it (at least one), ``mid`` the rest of the first
    half, ``late`` the second half."""
    m = n_steps - 1
    early = max(1, int(np.ceil(PHASES["early"] * m)))
    half = max(early, m // 2)
    return {"early": slice(1, 1 + early), "mid": slice(1 + early, 1 + half), "late": slice(1 + half, n_steps)}


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


def headroom(true: np.ndarray, ref: np.ndarray) -> dict[str, float | None]:
    """How much a split leaves to attribute, from its true trajectories [R, n, K] and the reference.

    * ``mse_reference``: ``mse_all_steps`` of the batch-blind reference (the zero line).
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
