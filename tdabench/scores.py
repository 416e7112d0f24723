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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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

    def __eq__(self, other: object) -> bool:
        # Equal as stored: a NaN (an undefined std or CI) equals NaN, so a result read back
        # from disk equals the one that was written.
        if not isinstance(other, Score):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

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
        better: ``min`` (an error) or ``max`` (a correlation, a skill or a detection rate).
        unit: what ``n`` counts: ``trajectory`` (run x test example), ``run``, ``example`` or
            ``candidate`` (a training example a ranking orders).
        kind: ``error`` (never undefined: a non-finite value fails the cell), ``correlation``
            (undefined where a side is constant), ``skill`` or ``detection`` (mislabel rankings).
        record: the kind of result that carries it: ``cell`` (``tdabench run``) or ``mislabel``.
        description: one line for ``tdabench list scores``.
    """

    name: str
    better: Literal["min", "max"]
    unit: Literal["trajectory", "run", "example", "candidate"]
    kind: Literal["error", "correlation", "skill", "detection"]
    description: str
    record: Literal["cell", "mislabel"] = "cell"


#: Shares of the candidates inspected, as GPTfluence reports them (``found_at_<f>``).
MISLABEL_FRACTIONS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)
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
SCORES.update({s.name: s for s in (
    ScoreSpec("auc", "max", "candidate", "detection",
              "mislabel detection: area under the true-positive vs false-positive rate curve of inspecting the training "
              "examples in the ranking's order (dattri's mislabel_detection_auc; ties by average rank; 0.5: chance)", "mislabel"),
    *(ScoreSpec(f"found_at_{f:g}", "max", "candidate", "detection",
                f"mislabel detection: the share of the flipped labels among the first {f:.0%} of the ranking ({f:g}: chance)", "mislabel")
      for f in MISLABEL_FRACTIONS),
)})
#: The scores of run cells, in table order.
SCORE_NAMES: tuple[str, ...] = tuple(k for k, v in SCORES.items() if v.record == "cell")
#: The scores of mislabel rankings.
MISLABEL_SCORE_NAMES: tuple[str, ...] = tuple(k for k, v in SCORES.items() if v.record == "mislabel")


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


def phase_slices(n_steps: int) -> dict[str, slice]:
    """The columns of each phase of a trajectory of ``n_steps`` recorded steps (column 0 initial):
    ``early`` the first 10% of the steps after it (at least one), ``mid`` the rest of the first
    half, ``late`` the second half."""
    m = n_steps - 1
    early = max(1, int(np.ceil(PHASES["early"] * m)))
    half = max(early, m // 2)
    return {"early": slice(1, 1 + early), "mid": slice(1 + early, 1 + half), "late": slice(1 + half, n_steps)}


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
