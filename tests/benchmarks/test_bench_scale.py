"""Every data-only method at GPTDynamics' published shapes: fit and simulate time, peak memory.

The FT shape (fine-tuning: 32 runs x 96 steps, batch 4, 200 training and 200 test examples)
and the IT shape (instruction tuning: 32 runs x 288 steps, batch 8, 768 of a 1,600 pool per run,
1,055 test examples), built with :func:`tdabench.sources.synthetic.gptdynamics_shape`. A unit is
what ``tdabench run`` does for one method and trajectory: the ``all-test`` fit simulating
``seen``, and, for a method with ``unseen_test``, the ``withheld-test`` fit simulating
``unseen-test``. Each unit starts from a cold embedding cache. Target: every method's IT unit
within 600 s on the 2-core development machine (docs/scaling.md).

Gradient methods need model checkpoints the synthetic shapes lack (their cost on the bank:
tests/benchmarks/test_bench_gradients.py, docs/scaling.md). Opt in with
``python -m pytest tests/benchmarks/test_bench_scale.py --benchmark-only -s`` (``-k ft``
for the FT shape only); ``scripts/scale_table.py`` turns the benchmark JSON into the table.
"""

from __future__ import annotations

import tempfile
import time
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

from tdabench.data import Benchmark
from tdabench.run.measure import Measure
from tdabench.run.registry import Registry
from tdabench.run.views import fit_data, split_view
from tdabench.simulator import MethodSpec
from tdabench.sources.synthetic import GPTDYNAMICS_SHAPES, gptdynamics_shape

#: The data-only methods (no model checkpoints): every registered one at the time of writing.
METHODS = (
    "constant", "mean-trajectory", "zero-line",
    "simfluence-linear", "simfluence-additive", "simfluence-multiplicative", "simfluence-residual",
    "cluster-datamodel", "gptfluence", "gptfluence-residual",
)
LIMIT_S = 600.0  # the target for one IT unit


@cache
def _bench(shape: str) -> Benchmark:
    return gptdynamics_shape(shape)[0]


@cache
def _registry() -> Registry:
    reg = Registry()
    reg.load([])
    return reg


def size(shape: str) -> dict[str, int]:
    """The quantities cost grows with: test examples, pool, steps per run, fit runs."""
    s = GPTDYNAMICS_SHAPES[shape]
    return {"n_test": s["n_test"], "n_train": s["n_train"], "steps": s["sample"] // s["batch"] * s["epochs"]}


def run_unit(spec: MethodSpec, bench: Benchmark) -> dict[str, Any]:
    """Fit and simulate one unit as the worker does; wall and CPU seconds, peak MiB, per fit."""
    fits = [("all-test", "seen")] + ([("withheld-test", "unseen-test")] if spec.capabilities.unseen_test else [])
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "fits": {}}
    with tempfile.TemporaryDirectory() as cache_dir:  # cold embedding cache, as a first run
        for fit, split in fits:
            data = fit_data(bench, "loss", fit=fit, seed=0, with_model=False, cache_dir=cache_dir, device="cpu")
            view = split_view(bench, split, "loss", seed=0)
            c0 = time.process_time()
            with Measure() as fm:
                sim = spec.create(spec.config_cls()).fit(data)
            c1 = time.process_time()
            with Measure() as sm:
                pred = np.asarray(sim.simulate(view.query), dtype=np.float64)
            c2 = time.process_time()
            assert pred.shape == view.truth.shape and np.isfinite(pred).all()
            info = getattr(sim, "fit_info", dict)()
            out["fits"][fit] = {
                "split": split, "fit_s": fm.seconds, "fit_cpu_s": c1 - c0, "simulate_s": sm.seconds,
                "simulate_cpu_s": c2 - c1, "peak_mb": max(fm.peak_mb, sm.peak_mb), "peak_method": fm.method,
                "mse": float(np.mean((pred[:, :, 1:] - view.truth[:, :, 1:]) ** 2)),
                "steps": info.get("steps") if isinstance(info, dict) else None,
            }
            del sim
    f = out["fits"].values()
    out.update(
        fit_s=sum(x["fit_s"] for x in f), simulate_s=sum(x["simulate_s"] for x in f),
        cpu_s=sum(x["fit_cpu_s"] + x["simulate_cpu_s"] for x in f), peak_mb=max(x["peak_mb"] for x in f),
    )
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", list(GPTDYNAMICS_SHAPES))
def test_scale(benchmark: Any, shape: str, method: str) -> None:
    spec = _registry().method(method)
    bench = _bench(shape)
    result = benchmark.pedantic(lambda: run_unit(spec, bench), rounds=1, iterations=1)
    benchmark.extra_info.update({"shape": shape, "method": method, **size(shape), **result})
    total = result["fit_s"] + result["simulate_s"]
    print(f"\n{shape} {method}: fit {result['fit_s']:.1f} s, simulate {result['simulate_s']:.2f} s, "
          f"cpu {result['cpu_s']:.1f} s, peak {result['peak_mb']:.0f} MiB")
    assert result["peak_mb"] > 0
    if shape == "it":
        assert total < LIMIT_S, f"{method} took {total:.0f} s on the IT shape (target {LIMIT_S:.0f} s)"
