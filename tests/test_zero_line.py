"""The zero line: the strongest batch-blind predictor the fit runs support."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tdabench import MeanChange, ZeroLine
from tdabench.run.views import fit_data, split_view
from tdabench.sources.synthetic import simfluence_benchmark


def _runs(persist: float, seed: int = 0, R: int = 32, n: int = 40, K: int = 25) -> np.ndarray:
    """[R, n, K] trajectories whose initial offset persists with weight ``persist`` (1: carried
    through the run, as the mean trajectory assumes; 0: forgotten, a per-step level)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 0.4, size=(R, n))
    level = np.cumsum(rng.normal(0, 0.1, size=(n, K)), axis=1)
    y = level[None] + persist * x[:, :, None] + (1 - persist) * 1.0 + rng.normal(0, 0.05, size=(R, n, K))
    y[:, :, 0] = x
    return y


def _fit(values: np.ndarray, n_fit: int = 25, n_val: int = 2) -> ZeroLine:
    bench, _ = simfluence_benchmark(n_test=values.shape[1])
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    ids = np.sort(np.asarray(data.test.ids))[: values.shape[1]]
    data = dataclasses.replace(data, values=values[:n_fit], validation_values=values[n_fit : n_fit + n_val],
                               test=data.test.subset(ids))
    return ZeroLine.fit(data)


def _mse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(((pred[..., 1:] - truth[..., 1:]) ** 2).mean())


@pytest.mark.parametrize("persist", [0.0, 0.5, 1.0])
def test_within_two_percent_of_the_better_batch_blind_line(persist: float) -> None:
    y = _runs(persist)
    line = _fit(y)
    ev = y[27:]
    fit = y[:25]
    mean_traj = ev[:, :, :1] + (fit - fit[:, :, :1]).mean(axis=0)[None]
    level = np.broadcast_to(fit.mean(axis=0)[None], ev.shape).copy()
    level[:, :, 0] = ev[:, :, 0]
    pred = line.predict_from(ev[:, :, 0], line.test_ids, ev.shape[2])
    assert np.array_equal(pred[:, :, 0], ev[:, :, 0])
    assert _mse(pred, ev) <= 1.02 * min(_mse(mean_traj, ev), _mse(level, ev))


def test_chooses_the_line_the_data_follow() -> None:
    assert _fit(_runs(1.0)).target == "mean-trajectory"
    assert _fit(_runs(0.0)).target == "per-step-level"


def test_runs_that_start_alike_give_the_mean_trajectory_exactly() -> None:
    bench, _ = simfluence_benchmark()
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    first = data.values[:1, :, :1]

    def alike(v: np.ndarray) -> np.ndarray:  # every run from one base model, as in the bank
        return np.concatenate([np.broadcast_to(first, v[:, :, :1].shape), v[:, :, 1:]], axis=2)

    data = dataclasses.replace(data, values=alike(data.values), validation_values=alike(data.validation_values))
    query = split_view(bench, "seen", "loss", seed=0).query
    query = dataclasses.replace(query, initial=np.broadcast_to(first[0, :, 0], query.initial.shape).copy())
    line = ZeroLine.fit(data)
    assert (line.target, line.strength) == ("mean-trajectory", np.inf)
    assert np.allclose(line.predict(query), MeanChange.fit(data).predict(query), rtol=0, atol=1e-12)


def test_unseen_test_examples_get_the_pooled_line() -> None:
    y = _runs(1.0)
    line = _fit(y)
    unknown = np.array([10**6, 10**6 + 1])
    x = np.array([[0.5, 1.5], [1.0, 2.0]])
    pred = line.predict_from(x, unknown, y.shape[2])
    assert np.allclose(pred[:, :, 1:], line.alpha[None, None, 1:] + line.beta[None, None, 1:] * x[:, :, None])
    # Own rows reproduce the per-example line.
    own = np.arange(len(line.test_ids))[:, None]
    assert np.allclose(line.predict_rows(y[27:, :, 0], own), line.predict_from(y[27:, :, 0], line.test_ids, y.shape[2]))
