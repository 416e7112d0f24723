"""Shared fixtures: synthetic benchmarks written in the GPTDynamics layout by the tests themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from torchthreads import one_thread

from tdabench.run.context import Context
from tdabench.data import Benchmark
from tdabench.formats.gptdynamics_write import write_benchmark
from tdabench.sources.synthetic import SyntheticTruth, simfluence_benchmark


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Methods cache into a per-session temp dir, never the user's home."""
    monkeypatch.setenv("TDABENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("TDABENCH_GPTDYNAMICS", raising=False)


@pytest.fixture(scope="session")
def synthetic() -> tuple[Benchmark, SyntheticTruth]:
    """A small benchmark from a known Simfluence-Linear process with a little noise."""
    return simfluence_benchmark(noise=0.002, trajectories=("loss", "bleu"))


@pytest.fixture
def synthetic_dir(tmp_path: Path, synthetic: tuple[Benchmark, SyntheticTruth]) -> Path:
    """The synthetic benchmark written in the GPTDynamics layout."""
    return write_benchmark(synthetic[0], tmp_path / "bench")


@pytest.fixture
def context() -> Context:
    """A context with the installed plugins."""
    return Context.create()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small tensors on a shared 2-core machine: one intra-op thread is faster and steadier."""
    with one_thread():
        yield
