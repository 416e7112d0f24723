"""Honest baselines every leaderboard needs.

* ``constant``: the initial value held at every step. Any method that cannot beat it has
  learned nothing about the dynamics.
* ``mean-trajectory``: the test example's mean change from its initial value over the fit
  runs, added to the query's initial value. It ignores the batches, so a method that does not
  beat it does not use the batches at all. For test examples it never saw it uses the mean
  change over all fitted test examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdabench import Capabilities, FitData, MeanChange, MethodSpec, NoConfig, Query, hookimpl


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


@hookimpl
def tdabench_methods() -> list[MethodSpec]:
    """The two baselines."""
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
    ]
