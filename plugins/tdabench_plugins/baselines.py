"""Honest baselines every leaderboard needs.

* ``constant``: the initial value held at every step. Any method that cannot beat it has
  learned nothing about the dynamics.
* ``mean-trajectory``: the test example's mean change from its initial value over the fit
  runs, added to the query's initial value. It ignores the batches, so a method that does not
  beat it does not use the batches at all. For test examples it never saw it uses the mean
  change over all fitted test examples.
* ``zero-line``: the strongest batch-blind predictor the fit runs support
  (:class:`tdabench.ZeroLine`: per test example and step, an affine map of the initial value,
  shrunk by cross-validation toward the mean trajectory, the per-step level or a pooled slope).
  Every ranking measures skill against it; it equals ``mean-trajectory`` wherever every run
  starts from the same value, as in the built-in bank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from typing import Any

from tdabench import Capabilities, FitData, MeanChange, MethodSpec, NoConfig, Query, ZeroLine, hookimpl


@dataclass
class Constant:
    """Predicts y_t = y_0."""

    config: NoConfig

    def fit(self, data: FitData) -> Constant:
        return self

    def simulate(self, query: Query) -> np.ndarray:
        R, n, K = query.shape
        return np.repeat(query.initial[:, :, None], K, axis=2)


@dataclass
class MeanTrajectory:
    """Predicts y_t = y_0 + mean over fit runs of (y_t - y_0) for the same test example."""

    config: NoConfig

    def fit(self, data: FitData) -> MeanTrajectory:
        self.mean_ = MeanChange.fit(data)
        return self

    def simulate(self, query: Query) -> np.ndarray:
        return self.mean_.predict(query)


@dataclass
class ZeroLineMethod:
    """Predicts the zero line (:class:`tdabench.ZeroLine`)."""

    config: NoConfig

    def fit(self, data: FitData) -> ZeroLineMethod:
        self.line_ = ZeroLine.fit(data)
        return self

    def simulate(self, query: Query) -> np.ndarray:
        return self.line_.predict(query)

    def fit_info(self) -> dict[str, Any]:
        """What cross-validation chose."""
        return self.line_.info()


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """The three baselines."""
    return [
        MethodSpec(
            name="constant",
            factory=Constant,
            capabilities=Capabilities(unseen_test=True, unseen_train=True),
            version="1",
            summary="initial value held at every step",
        ),
        MethodSpec(
            name="mean-trajectory",
            factory=MeanTrajectory,
            capabilities=Capabilities(unseen_test=True, unseen_train=True, any_length=False),
            version="1",
            summary="per-test-example mean change over the fit runs, from the initial value",
        ),
        MethodSpec(
            name="zero-line",
            factory=ZeroLineMethod,
            capabilities=Capabilities(unseen_test=True, unseen_train=True, any_length=False),
            version="1",
            summary="the zero line: per-step affine map of the initial value, shrunk by cross-validation (the reference of skill)",
        ),
    ]
