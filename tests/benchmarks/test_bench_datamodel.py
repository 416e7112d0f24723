"""Speed of the cluster datamodel at the published fine-tuning scale, and on a large pool.

Fit on 25 runs x 96 steps with 200 training and 128 test examples (the GPTDynamics fine-tuning
shape), embeddings cached, and with 10,000 training examples (``n_train=5000`` makes pools A
and B of 5,000 each; the k-means and the reading of cached embeddings grow with it). Targets
on the 2-core development machine: fit under 2 s at the published shape and under 30 s with
10,000 examples, simulate under 0.1 s. Measured: 0.45 s, 16.6 s and 1 ms. Run with
``python -m pytest tests/benchmarks/test_bench_datamodel.py --benchmark-only``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tdabench.data import ExampleSet
from tdabench.simulator import FitData, Query
from tdabench.sources.synthetic import simfluence_benchmark
from tdabench.run.views import fit_data, split_view
from tdabench_plugins.datamodel import ClusterDatamodel, ClusterDatamodelConfig


def _problem(n_train: int, cache: Path) -> tuple[FitData, Query]:
    bench, _ = simfluence_benchmark(n_train=n_train, n_test=160, sample=128, batch=4, epochs=3, noise=0.002, seed=0)
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=str(cache), device="cpu")
    if n_train > 200:  # every example of the pool in the fit, as in a large GPTDynamics pool
        data = dataclasses.replace(data, train=bench.train)
    ClusterDatamodel(ClusterDatamodelConfig()).fit(data)  # fill the embedding cache
    return data, split_view(bench, "seen", "loss", seed=0).query


@pytest.mark.parametrize("n_train", [200, 5000])
def test_fit(benchmark: pytest.FixtureRequest, tmp_path: Path, n_train: int) -> None:
    data, _ = _problem(n_train, tmp_path)
    model = benchmark.pedantic(lambda: ClusterDatamodel(ClusterDatamodelConfig()).fit(data), rounds=3, iterations=1)  # type: ignore[attr-defined]
    benchmark.extra_info.update(clusters=model.k_, lambda_=model.lambda_, n_train=len(data.train))  # type: ignore[attr-defined]
    assert isinstance(data.train, ExampleSet) and model.k_ >= 1


def test_simulate(benchmark: pytest.FixtureRequest, tmp_path: Path) -> None:
    data, query = _problem(200, tmp_path)
    model = ClusterDatamodel(ClusterDatamodelConfig()).fit(data)
    pred = benchmark(model.simulate, query)  # type: ignore[operator]
    assert pred.shape == query.shape and np.isfinite(pred).all()
