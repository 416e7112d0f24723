"""Speed of Simfluence-Linear at the published fine-tuning scale.

Fit on 25 runs x 96 steps with 200 training and 128 test examples (the GPTDynamics fine-tuning
shape), and simulate the 5 evaluation runs. Targets on the 2-core development machine: fit
under 10 s, simulate under 0.5 s. Run with
``python -m pytest tests/benchmarks/test_bench_simfluence.py --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tdabench.simulator import FitData, Query
from tdabench.sources.synthetic import simfluence_benchmark
from tdabench.run.views import fit_data, split_view
from tdabench_plugins import simfluence as sf

VARIANTS = {"linear": sf.SimfluenceLinear, "additive": sf.SimfluenceAdditive, "multiplicative": sf.SimfluenceMultiplicative}


@pytest.fixture(scope="module")
def problem() -> tuple[FitData, Query]:
    """25 fit / 2 validation / 5 evaluation runs of 96 steps; 200 training, 128 fitted test examples."""
    bench, _ = simfluence_benchmark(n_train=200, n_test=160, sample=128, batch=4, epochs=3, noise=0.002, seed=0)
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    assert data.values.shape == (25, 128, 96) and len(data.train) == 200
    query = split_view(bench, "seen", "loss", seed=0).query
    assert query.shape == (5, 128, 96)
    return data, query


@pytest.mark.parametrize("solver", ["auto", "direct"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fit(benchmark: pytest.FixtureRequest, problem: tuple[FitData, Query], variant: str, solver: str) -> None:
    data, _ = problem
    cfg = sf.SimfluenceConfig(solver=solver)
    model = benchmark.pedantic(lambda: VARIANTS[variant](cfg).fit(data), rounds=3, iterations=1)  # type: ignore[attr-defined]
    benchmark.extra_info.update(lambda_=model.lambda_, solver=model.solver_, grid=len(cfg.lambdas))  # type: ignore[attr-defined]
    assert np.isfinite(model.factors()[3]).all()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_simulate(benchmark: pytest.FixtureRequest, problem: tuple[FitData, Query], variant: str) -> None:
    data, query = problem
    model = VARIANTS[variant](sf.SimfluenceConfig()).fit(data)
    pred = benchmark(model.simulate, query)  # type: ignore[operator]
    assert pred.shape == query.shape and np.isfinite(pred).all()
