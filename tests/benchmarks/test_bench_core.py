"""Core speed targets, measured with pytest-benchmark (run: pytest tests/benchmarks --benchmark-only).

Targets (issue: foundation): loading a GPTDynamics-size benchmark (32 runs x 96 steps x 200 test
examples, plus example files) under 2 s; scoring it under 1 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tdabench.formats.gptdynamics_load import load_benchmarks
from tdabench.formats.gptdynamics_write import write_benchmark
from tdabench.scoring import score
from tdabench.sources.synthetic import simfluence_benchmark


@pytest.fixture(scope="module")
def gptdynamics_size(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bench, _ = simfluence_benchmark(n_train=200, n_test=200, n_runs=32, n_unseen_runs=0, sample=128, batch=4, epochs=3, noise=0.01)
    assert bench.runs[0].n_steps == 96
    return write_benchmark(bench, tmp_path_factory.mktemp("gd") / "bench")


def test_load_gptdynamics_size(benchmark, gptdynamics_size: Path) -> None:  # noqa: ANN001
    benches = benchmark(load_benchmarks, gptdynamics_size)
    assert len(benches[0].runs) == 32 and len(benches[0].test) == 200


def test_score_gptdynamics_size(benchmark) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    true = rng.normal(size=(5, 200, 96))
    pred = true + rng.normal(scale=0.1, size=true.shape)
    result = benchmark(score, pred, true)
    assert result["mse_all_steps"].mean == pytest.approx(0.01, rel=0.1)
