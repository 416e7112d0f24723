"""Scores of predicted against true trajectories (formulas in docs/metrics.md).

Inputs are float arrays ``pred`` and ``true`` of shape [R, n, K]: R evaluation runs, n test
examples, K recorded steps, column 0 the initial point. Everything is vectorized; the
bootstrap resamples test examples (the unit a benchmark draws) with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Score:
    """One metric: mean, std (of the per-unit values), 95% bootstrap CI and unit count.

    ``mean`` is NaN when the metric is undefined everywhere (for example the Spearman
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
    def from_dict(cls, d: dict[str, object]) -> Score:
        """Inverse of :meth:`to_dict`."""
        def g(x: object) -> float:
            return float("nan") if x is None else float(x)  # type: ignore[arg-type]

        lo, hi = d["ci95"]  # type: ignore[misc]
        return cls(g(d["mean"]), g(d["std"]), (g(lo), g(hi)), int(d["n"]))  # type: ignore[arg-type]


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


# Per-unit values. "Trajectory" metrics give [R, n]; run-level ones give [R].
def _sq_steps(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((p[..., 1:] - y[..., 1:]) ** 2).mean(axis=-1)


def _abs_steps(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(p[..., 1:] - y[..., 1:]).mean(axis=-1)


def _sq_final(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (p[..., -1] - y[..., -1]) ** 2


def _abs_final(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(p[..., -1] - y[..., -1])


def _rho_steps(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return rank_corr(p[..., 1:], y[..., 1:], axis=-1)


#: name -> (per-trajectory function [.., n, K] -> [.., n], one-line description)
TRAJECTORY_METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], str]] = {
    "mse_all_steps": (_sq_steps, "mean squared error over the steps after the initial point, per trajectory; mean over trajectories"),
    "mae_all_steps": (_abs_steps, "mean absolute error over the steps after the initial point, per trajectory; mean over trajectories"),
    "mse_final": (_sq_final, "squared error at the final step; mean over trajectories"),
    "mae_final": (_abs_final, "absolute error at the final step; mean over trajectories"),
    "spearman_steps": (_rho_steps, "Spearman rho across the steps after the initial point, per trajectory; mean over trajectories"),
}
RUN_METRICS: dict[str, str] = {
    "spearman_final": "Spearman rho across test examples at the final step, per evaluation run; mean over runs (the published rho)",
}
METRIC_NAMES: tuple[str, ...] = ("mse_all_steps", "mae_all_steps", "mse_final", "mae_final", "spearman_final", "spearman_steps")


def describe_metrics() -> dict[str, str]:
    """Metric name -> one-line definition, for ``tdabench list metrics``."""
    out = {k: v[1] for k, v in TRAJECTORY_METRICS.items()}
    out.update(RUN_METRICS)
    return {k: out[k] for k in METRIC_NAMES}


def _summary(values: np.ndarray, boot: np.ndarray) -> Score:
    """Mean and std of the defined values, CI from the bootstrap means."""
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return Score(float("nan"), float("nan"), (float("nan"), float("nan")), 0)
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.percentile(boot, [2.5, 97.5]) if boot.size else (np.nan, np.nan))
    return Score(float(defined.mean()), float(defined.std()), (float(lo), float(hi)), int(defined.size))


def score(pred: np.ndarray, true: np.ndarray, *, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict[str, Score]:
    """Every metric of ``pred`` against ``true`` (both [R, n, K]), with bootstrap CIs."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must both be [runs, tests, steps]")
    n = pred.shape[1]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # resampled test examples
    out: dict[str, Score] = {}
    for name, (fn, _) in TRAJECTORY_METRICS.items():
        per = fn(pred, true)  # [R, n]
        with np.errstate(invalid="ignore"), _quiet():
            per_example = np.nanmean(per, axis=0)  # [n]
            boot = np.nanmean(per_example[idx], axis=1)
        out[name] = _summary(per, boot)
    final_p, final_y = pred[:, :, -1], true[:, :, -1]
    per_run = rank_corr(final_p, final_y, axis=-1)  # [R]
    # Resample test examples, then correlate within each run: [n_boot, R].
    boot_runs = rank_corr(final_p[:, idx].transpose(1, 0, 2), final_y[:, idx].transpose(1, 0, 2), axis=-1)
    with _quiet():
        boot = np.nanmean(boot_runs, axis=1)
    out["spearman_final"] = _summary(per_run, boot)
    return {k: out[k] for k in METRIC_NAMES}


class _quiet:
    """Silence numpy's 'mean of empty slice' where all values are undefined (reported as NaN)."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)
