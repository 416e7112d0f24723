"""Simulators that nest the zero line: they predict the deviation from it.

The zero line of the fit runs (:class:`~tdabench.methods.zero_line.ZeroLine`, the strongest
batch-blind predictor) already predicts everything that does not depend on which data a run
saw. :class:`Residual` wraps any simulator so that it learns only the rest::

    y_pred = zero_line + s * (inner(residual rollout from 0) - mean over the fit runs of it)

The inner simulator is fitted on the residuals ``d = y - zero line`` (``d_0 = 0``) and
rolls out from zero. Its own mean prediction over the fit runs is subtracted (a control
variate: whatever it predicts for every run alike is batch-blind), and one scale ``s >= 0`` is
fitted by least squares: on the validation runs (``shrink``: at most 1, so the wrapped method
never moves further from the baseline than it would alone) or on the fit runs (``fit``: for
methods whose raw scale is arbitrary, such as gradient scores). With no usable data signal,
``s`` goes to 0 and the prediction is the zero line, never the constant. Otherwise the
sum is clipped to the guard range of the fitted values (:func:`~tdabench.methods.guards.guard_range`:
never below 0 for a loss), as the unwrapped methods clip what they return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from tdabench.methods.zero_line import ZeroLine
from tdabench.methods.guards import fitted_values, guard_range, guarded
from tdabench.simulator import FitData, Query, RunBatches, Simulator

Scale = Literal["shrink", "fit"]


def residual_values(line: ZeroLine, data_values: np.ndarray, test_ids: np.ndarray) -> np.ndarray:
    """``y - zero line`` of each run [R, n, K], the line taken from each run's own initial value (column 0 is 0)."""
    return data_values - line.predict_from(data_values[:, :, 0], test_ids, data_values.shape[2])


class Residual:
    """A simulator of the deviation from the zero line, around an ``inner`` simulator.

    Args:
        inner: the wrapped method's factory (its class), called with ``config``.
        scale: ``shrink`` (``s`` in [0, 1], on the validation runs) or ``fit`` (``s >= 0``, on the fit runs).
        config: the wrapped method's config.

    Learned state: ``mean_`` (the :class:`ZeroLine`), ``inner_``, ``center_`` ([n, K], the inner's mean residual over
    the fit runs per fitted test example), ``scale_`` (``s``), ``bounds_`` (the values' guard
    range, :func:`~tdabench.methods.guards.guard_range`), and the fit runs' batches and examples
    (``runs_``, ``train_``) to center test examples first met in a query.
    """

    def __init__(self, inner: Callable[[Any], Simulator], scale: Scale, config: Any) -> None:
        self.inner = inner
        self.scale = scale
        self.config = config

    def fit(self, data: FitData) -> Residual:
        """Fit the inner simulator on the residuals, center it and choose the scale."""
        self.mean_ = ZeroLine.fit(data)
        resid = dataclasses.replace(
            data,
            values=residual_values(self.mean_, data.values, data.test.ids),
            validation_values=residual_values(self.mean_, data.validation_values, data.test.ids),
        )
        self.inner_ = self.inner(self.config).fit(resid)
        self.runs_, self.train_, self.trajectory_, self.seed_ = data.runs, data.train, data.trajectory, data.seed
        self.center_ = self._rollout(data.runs, data.test, data.train).mean(axis=0)
        on_validation = self.scale == "shrink" and len(data.validation) > 0
        runs, truth = (data.validation, resid.validation_values) if on_validation else (data.runs, resid.values)
        p = self._rollout(runs, data.test, data.train) - self.center_[None]
        denom = float((p[..., 1:] ** 2).sum())
        s = float((p[..., 1:] * truth[..., 1:]).sum()) / denom if denom > 0 else 0.0
        self.scale_ = float(np.clip(s, 0.0, 1.0 if self.scale == "shrink" else np.inf))
        self.scale_on_ = "validation" if on_validation else "fit"
        # The inner method's guard acts on the deviations; this one on the values themselves
        # (a loss cannot go below 0), unless the wrapped method's own `clip` option is off.
        clip = bool(getattr(self.config, "clip", True))
        self.bounds_ = guard_range(fitted_values(data)) if clip else None
        return self

    def _rollout(self, runs: RunBatches, test: Any, train: Any) -> np.ndarray:
        """The inner simulator's residual rollout of ``runs`` from 0, [R, n, K]."""
        q = Query(self.trajectory_, runs, test, np.zeros((len(runs), len(test))), train, self.seed_)
        return np.asarray(self.inner_.simulate(q), dtype=np.float64)

    def _center(self, test: Any) -> np.ndarray:
        """[n, K]: the inner's mean residual over the fit runs for each of ``test``."""
        ids = self.mean_.test_ids
        pos = np.searchsorted(ids, test.ids).clip(max=max(len(ids) - 1, 0))
        known = ids[pos] == test.ids if len(ids) else np.zeros(len(test), bool)
        if known.all():
            return self.center_[pos]
        out = np.empty((len(test), self.center_.shape[1]))
        out[known] = self.center_[pos[known]]
        new = test.subset(test.ids[~known])
        out[~known] = self._rollout(self.runs_, new, self.train_).mean(axis=0)
        return out

    def simulate(self, query: Query) -> np.ndarray:
        """The zero line plus the scaled, centered residual rollout."""
        if self.scale_ == 0.0:
            return self.mean_.predict(query)
        d = np.asarray(self.inner_.simulate(dataclasses.replace(query, initial=np.zeros_like(query.initial))), dtype=np.float64)
        pred = self.mean_.predict(query) + self.scale_ * (d - self._center(query.test)[None])
        return guarded(pred, self.bounds_)

    def self_influence(self, ids: np.ndarray) -> np.ndarray:
        """The inner simulator's self-influence on the residuals, times the scale (a zero scale,
        which predicts no deviation at all, keeps the inner's values so the ranking survives)."""
        inner = getattr(self.inner_, "self_influence", None)
        if inner is None:
            raise TypeError(f"{type(self.inner_).__name__} has no self_influence")
        values = np.asarray(inner(ids), dtype=np.float64)
        return values * self.scale_ if self.scale_ > 0 else values

    def fit_info(self) -> dict[str, Any]:
        """The scale and where it was fitted, and the inner method's own fit info."""
        inner = getattr(self.inner_, "fit_info", None)
        return {"residual_scale": self.scale_, "residual_scale_on": self.scale_on_, **({"inner": inner()} if inner else {})}
