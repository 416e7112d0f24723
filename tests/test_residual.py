"""The residual forms nest the mean trajectory: they fall back to it without signal, and stay in range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tdabench.methods.zero_line import ZeroLine
from tdabench.methods.guards import fitted_values, guard_range, widened_range
from tdabench.methods.residual import Residual
from tdabench.scoring import score
from tdabench.simulator import FitData, Query
from tdabench.sources.synthetic import simfluence_benchmark
from tdabench.run.views import fit_data, split_view
from tdabench_plugins.simfluence import SimfluenceConfig, SimfluenceLinear


@dataclass(frozen=True)
class _Config:
    sign: float = 1.0
    size: float = 1.0
    clip: bool = True


class _RunSeedDeviation:
    """A stub inner simulator: every run deviates by ``sign * size * (seed - 20)`` at every step."""

    def __init__(self, config: _Config) -> None:
        self.config = config

    def fit(self, data: FitData) -> _RunSeedDeviation:
        return self

    def simulate(self, query: Query) -> np.ndarray:
        R, n, K = query.shape
        dev = self.config.sign * self.config.size * (np.asarray(query.runs.seeds, dtype=np.float64) - 20.0)
        out = np.broadcast_to(dev[:, None, None], (R, n, K)).copy()
        out[:, :, 0] = 0.0
        return out


class _Contrarian:
    """A stub inner simulator that predicts, for every run it was fitted on, minus its deviation."""

    def __init__(self, config: _Config) -> None:
        self.config = config

    def fit(self, data: FitData) -> _Contrarian:
        runs = (*data.runs.names, *data.validation.names)
        self.known_ = dict(zip(runs, np.concatenate([data.values, data.validation_values])))
        return self

    def simulate(self, query: Query) -> np.ndarray:
        return np.stack([-self.known_.get(name, np.zeros(query.shape[1:])) for name in query.runs.names])


@pytest.fixture(scope="module")
def bench():  # noqa: ANN201
    return simfluence_benchmark(noise=0.002, seed=3)[0]


def _parts(bench):  # noqa: ANN001, ANN202
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    view = split_view(bench, "seen", "loss", seed=0)
    return data, view, ZeroLine.fit(data).predict(view.query)


def test_with_signal_it_beats_the_zero_line(bench) -> None:  # noqa: ANN001
    data, view, ref = _parts(bench)
    model = Residual(SimfluenceLinear, "shrink", SimfluenceConfig()).fit(data)
    assert 0.0 < model.scale_ <= 1.0
    assert score(model.simulate(view.query), view.truth, ref)["skill_mse"].mean > 0.5


@pytest.mark.parametrize("scale", ["shrink", "fit"])
def test_a_signal_pointing_the_wrong_way_falls_back_to_the_zero_line_exactly(bench, scale: str) -> None:  # noqa: ANN001
    data, view, ref = _parts(bench)
    model = Residual(_Contrarian, scale, _Config()).fit(data)
    assert model.scale_ == 0.0  # least squares gives s = -1, and s is never negative
    np.testing.assert_array_equal(model.simulate(view.query), ref)


@pytest.mark.parametrize("clip", [True, False])
def test_the_sum_is_clipped_to_the_guard_range_unless_clip_is_off(bench, clip: bool) -> None:  # noqa: ANN001
    data, view, ref = _parts(bench)
    model = Residual(_RunSeedDeviation, "fit", _Config(size=1e3, clip=clip)).fit(data)
    model.scale_ = 1.0  # force the huge deviations through
    pred = model.simulate(view.query)
    lo, hi = guard_range(fitted_values(data))
    assert lo == 0.0  # losses: the floor is 0, not min - span
    if clip:
        assert pred.min() >= 0.0 and pred.max() <= hi
    else:
        assert pred.min() < 0.0 or pred.max() > hi


def test_the_guard_floors_at_zero_only_for_non_negative_values() -> None:
    assert widened_range(np.array([1.0, 3.0])) == (-1.0, 5.0)  # the per-step clip: no floor
    assert guard_range(np.array([1.0, 3.0])) == (0.0, 5.0)
    assert guard_range(np.array([-1.0, 3.0])) == (-5.0, 7.0)
    assert guard_range(np.array([np.nan])) is None
