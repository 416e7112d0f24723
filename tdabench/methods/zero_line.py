"""The zero line: the strongest batch-blind predictor the fit runs support.

Every ranking in tdabench measures a method against it: it is the reference of ``skill_mse``
and of the headroom, the base every ``-residual`` form adds its deviation to, and the
``zero-line`` method. It never looks at a run's batches, so whatever a method gains over it
comes from the data the run trained on.

Per test example ``z`` and step ``t``, an affine map of the initial value fitted on the fit runs::

    y_t = mean_t + b_t * (y_0 - mean_0)        (mean_t, mean_0: means over the fit runs)

It nests the two batch-blind lines the field uses: ``b_t = 1`` is the mean trajectory
(``y_0`` plus the mean change: each run's starting offset carried through the run) and
``b_t = 0`` the per-step mean level (the offset forgotten). The slope is shrunk toward a
target, one of 1, 0 or the slope pooled over test examples::

    b_t = (S_xy + lam * c * target_t) / (S_xx + lam * c)      (c: the mean S_xx over test examples)

and the target and the strength ``lam`` are chosen by leave-one-run-out cross-validation over
the fit runs plus the error on the validation runs. When every fit run starts from the same
value (one base model, as in the bank), the slope has nothing to act on and the zero line is
the mean trajectory exactly.

A test example the fit never saw (``unseen-test``) gets a pooled line: ``alpha_t + beta_t * y_0``
across the fitted test examples, with ``beta_t`` shrunk toward 1 (the pooled mean change) by
5-fold cross-validation over test examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tdabench.simulator import FitData, Query

#: Shrinkage strengths tried; ``inf`` is the target itself.
STRENGTHS: tuple[float, ...] = (np.inf, 100.0, 10.0, 1.0, 0.1, 0.0)
TARGETS: tuple[str, ...] = ("mean-trajectory", "per-step-level", "pooled-slope")


def _slopes(sxy: np.ndarray, sxx: np.ndarray, target: np.ndarray, lam: float, c: np.ndarray | float) -> np.ndarray:
    """Shrunk slopes [..., n, K] from centered sums ``sxy`` [..., n, K], ``sxx`` [..., n] and the
    scale ``c`` [...] (the target itself where ``lam`` is inf or there is no spread at all)."""
    cc = np.asarray(c, dtype=np.float64)[..., None, None]
    if np.isinf(lam):
        return np.broadcast_to(target, sxy.shape).copy()
    shrunk = (sxy + lam * cc * target) / np.maximum(sxx[..., None] + lam * cc, 1e-300)
    return np.where(cc > 0, shrunk, target)


def _target(name: str, sxy_sum: np.ndarray, sxx_sum: np.ndarray) -> np.ndarray:
    """The shrinkage target per step [..., 1, K] (broadcast over test examples)."""
    shape = sxy_sum.shape[:-2] + (1, sxy_sum.shape[-1])
    if name == "mean-trajectory":
        return np.ones(shape)
    if name == "per-step-level":
        return np.zeros(shape)
    pooled = sxy_sum.sum(axis=-2, keepdims=True) / np.maximum(sxx_sum.sum(axis=-1)[..., None, None], 1e-300)
    return np.where(sxx_sum.sum(axis=-1)[..., None, None] > 0, pooled, 1.0)


@dataclass(frozen=True, eq=False)
class ZeroLine:
    """A fitted zero line.

    Attributes:
        test_ids: the fitted test examples [n], sorted.
        mean_x: their mean initial value over the fit runs [n].
        mean_y: their mean value per step [n, K] (column 0 equals ``mean_x``).
        slope: ``b_t`` [n, K] (column 0 is 1).
        alpha, beta: the pooled line for unseen test examples [K] each.
        target, strength: what cross-validation chose (``strength`` inf: the target itself).
    """

    test_ids: np.ndarray
    mean_x: np.ndarray
    mean_y: np.ndarray
    slope: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    target: str
    strength: float

    @classmethod
    def fit(cls, data: FitData) -> ZeroLine:
        """Fit on the fit runs; choose target and strength on them and the validation runs."""
        y = np.asarray(data.values, dtype=np.float64)  # [R, n, K]
        val = np.asarray(data.validation_values, dtype=np.float64) if len(data.validation) else None
        target, lam = _choose(y, val)
        mx, my, b = _fit(y, target, lam)
        alpha, beta = _pooled_line(mx, my)
        return cls(np.array(data.test.ids, copy=True), mx, my, b, alpha, beta, target, float(lam))

    def predict_from(self, initial: np.ndarray, test_ids: np.ndarray, n_steps: int) -> np.ndarray:
        """float64 [R, n, K]: the zero line from ``initial`` [R, n] of test examples ``test_ids``."""
        if n_steps != self.mean_y.shape[1]:
            raise ValueError(f"the zero line has {self.mean_y.shape[1]} recorded steps; a query with {n_steps} "
                             "cannot use it (batch-blind predictions exist only for runs as long as the fit runs)")
        x = np.asarray(initial, dtype=np.float64)
        ids = np.asarray(test_ids, dtype=np.int64)
        pos = np.searchsorted(self.test_ids, ids).clip(max=max(len(self.test_ids) - 1, 0))
        known = (self.test_ids[pos] == ids) if len(self.test_ids) else np.zeros(len(ids), bool)
        seen = self.mean_y[pos][None] + self.slope[pos][None] * (x - self.mean_x[pos][None])[:, :, None]
        pooled = self.alpha[None, None, :] + self.beta[None, None, :] * x[:, :, None]
        out = np.where(known[None, :, None], seen, pooled)
        out[:, :, 0] = x  # exactly the initial value
        return out

    def predict(self, query: Query) -> np.ndarray:
        """float64 [R, n, K] for a query, from its initial values."""
        return self.predict_from(query.initial, query.test.ids, query.shape[2])

    def predict_rows(self, initial: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """float64 [R, n, K]: each example's line averaged over fitted rows ``rows`` [n, m] (its own
        row, or the rows of the fitted test examples it borrows from), from ``initial`` [R, n]."""
        x = np.asarray(initial, dtype=np.float64)[:, :, None, None]  # [R, n, 1, 1]
        lines = self.mean_y[rows][None] + self.slope[rows][None] * (x - self.mean_x[rows][None, :, :, None])  # [R, n, m, K]
        out = lines.mean(axis=2)
        out[:, :, 0] = initial
        return out

    def info(self) -> dict[str, object]:
        """What was chosen, for ``fit_info``."""
        return {"zero_line_target": self.target, "zero_line_strength": None if np.isinf(self.strength) else self.strength}


def _spread_only(sxx: np.ndarray, sxy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sxx`` and ``sxy`` with rounding noise zeroed: where the initial values of a test example
    agree to about 1e-6 of their size, it has no spread for a slope to act on (raw moments
    cancel to about 1e-14 of it)."""
    tol = x.shape[0] * (1e-6 * np.maximum(1.0, np.abs(x).max(axis=0))) ** 2  # [n]
    flat = sxx <= tol[None] if sxx.ndim == 2 else sxx <= tol
    return np.where(flat, 0.0, sxx), np.where(flat[..., None], 0.0, sxy)


def _fit(y: np.ndarray, target: str, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean_x [n], mean_y [n, K], slope [n, K]) on runs ``y`` [R, n, K]."""
    x = y[:, :, 0]
    mx, my = x.mean(axis=0), y.mean(axis=0)
    dx = x - mx
    sxx, sxy = _spread_only((dx**2).sum(axis=0), np.einsum("rn,rnk->nk", dx, y - my), x)
    b = _slopes(sxy, sxx, _target(target, sxy, sxx), lam, float(sxx.mean()))
    b[:, 0] = 1.0
    return mx, my, b


def _choose(y: np.ndarray, val: np.ndarray | None) -> tuple[str, float]:
    """Target and strength with the least held-out squared error (steps after the initial one):
    each fit run predicted by the other fit runs, and each validation run by all of them."""
    R = y.shape[0]
    x = y[:, :, 0]
    if np.allclose(x, x[0], rtol=1e-6, atol=0) and (val is None or np.allclose(val[:, :, 0], x[0], rtol=1e-6, atol=0)):
        return "mean-trajectory", np.inf  # every run starts alike: the slope is never used
    errs: dict[tuple[str, float], float] = {}
    sx, sxx_raw = x.sum(axis=0), (x**2).sum(axis=0)
    sy, sxy_raw = y.sum(axis=0), np.einsum("rn,rnk->nk", x, y)
    loo = R >= 3
    if loo:
        m = R - 1
        mx = (sx[None] - x) / m  # [R, n]
        my = (sy[None] - y) / m  # [R, n, K]
        sxx, sxy = _spread_only(sxx_raw[None] - x**2 - m * mx**2, sxy_raw[None] - x[:, :, None] * y - m * mx[:, :, None] * my, x)
    for target in TARGETS:
        for lam in STRENGTHS:
            err = 0.0
            if loo:
                b = _slopes(sxy, sxx, _target(target, sxy, sxx), lam, sxx.mean(axis=1))
                pred = my + b * (x - mx)[:, :, None]
                err += float(((pred[..., 1:] - y[..., 1:]) ** 2).sum())
            if val is not None:
                fmx, fmy, fb = _fit(y, target, lam)
                pred = fmy[None] + fb[None] * (val[:, :, 0] - fmx[None])[:, :, None]
                err += float(((pred[..., 1:] - val[..., 1:]) ** 2).sum())
            errs[(target, lam)] = err
    return min(errs, key=lambda k: (errs[k], TARGETS.index(k[0]), -k[1]))


def _pooled_line(mx: np.ndarray, my: np.ndarray, folds: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """``alpha_t + beta_t * y_0`` across test examples ([K] each), ``beta`` shrunk toward 1 by
    ``folds``-fold cross-validation over test examples (``beta = 1``: the pooled mean change)."""
    n, K = my.shape
    if n == 0:
        return np.zeros(K), np.ones(K)

    def line(rows: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = mx[rows], my[rows]
        dx = xs - xs.mean()
        cxx, cxy = float((dx**2).sum()), dx @ (ys - ys.mean(axis=0))
        c = cxx / max(len(rows), 1)
        beta = np.ones(K) if (np.isinf(lam) or cxx <= 0) else (cxy + lam * c) / (cxx + lam * c)
        return ys.mean(axis=0) - beta * xs.mean(), beta

    if n < 2 * folds:
        return line(np.arange(n), np.inf)
    fold = np.arange(n) % folds
    best, best_err = np.inf, np.inf
    for lam in STRENGTHS:
        err = 0.0
        for f in range(folds):
            a, b = line(np.flatnonzero(fold != f), lam)
            rows = np.flatnonzero(fold == f)
            err += float(((a[None, 1:] + b[None, 1:] * mx[rows, None] - my[rows, 1:]) ** 2).sum())
        if err < best_err - 1e-12 * max(best_err, 1.0):
            best, best_err = lam, err
    alpha, beta = line(np.arange(n), best)
    alpha[0], beta[0] = 0.0, 1.0
    return alpha, beta


@dataclass(frozen=True, eq=False)
class MeanChange:
    """The batch-blind prediction: each test example's mean change from its initial value over
    the fit runs, added to a query's initial values (the pooled mean change for a test example
    the fit did not see).

    It is the ``mean-trajectory`` baseline, and the zero line wherever every run starts from the same value.
    """

    test_ids: np.ndarray  # [n] sorted
    delta: np.ndarray  # [n, K]
    pooled: np.ndarray  # [K]

    @classmethod
    def fit(cls, data: FitData) -> MeanChange:
        """From the fit runs' values (validation runs are not used)."""
        delta = (data.values - data.values[:, :, :1]).mean(axis=0)
        return cls(np.array(data.test.ids, copy=True), delta, delta.mean(axis=0))

    def changes(self, test_ids: np.ndarray, n_steps: int) -> np.ndarray:
        """float64 [n, K]: the mean change of each test example (pooled for unknown ones)."""
        if n_steps != self.delta.shape[1]:
            raise ValueError(f"the mean trajectory has {self.delta.shape[1]} recorded steps; a query with {n_steps} "
                             "cannot use it (batch-blind predictions exist only for runs as long as the fit runs)")
        ids = np.asarray(test_ids, dtype=np.int64)
        pos = np.searchsorted(self.test_ids, ids).clip(max=max(len(self.test_ids) - 1, 0))
        known = (self.test_ids[pos] == ids) if len(self.test_ids) else np.zeros(len(ids), bool)
        return np.where(known[:, None], self.delta[pos], self.pooled[None, :])

    def predict(self, query: Query) -> np.ndarray:
        """float64 [R, n, K]: the query's initial values plus the mean changes."""
        return query.initial[:, :, None] + self.changes(query.test.ids, query.shape[2])[None, :, :]
