"""Parallel speed-up of the run grid and of recording: serial vs --jobs 2 vs a local Ray with 2 CPUs.

Run: python -m pytest tests/benchmarks/test_bench_executors.py --benchmark-only -s
The ratios (target >= 1.7x on 2 cores) and Ray's start-up overhead are printed and stored in
the benchmark's extra_info.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tdabench.context import Context
from tdabench.executors import ProcessExecutor, RayExecutor, SerialExecutor
from tdabench.formats.gptdynamics_write import write_benchmark
from tdabench.runner import RunPlan, choose_methods, execute
from tdabench.sources import refs_from_dir
from tdabench.synthetic import simfluence_benchmark

METHODS = ["simfluence-linear", "simfluence-additive", "simfluence-multiplicative", "mean-trajectory"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Context, list, list]:
    """8 units: 4 methods x 2 trajectory metrics on a GPTDynamics-size synthetic benchmark."""
    bench, _ = simfluence_benchmark(n_train=200, n_test=128, n_runs=32, n_unseen_runs=3, sample=128, batch=4, epochs=3, noise=0.01, metrics=("loss", "bleu"))
    root = write_benchmark(bench, tmp_path_factory.mktemp("grid") / "bench")
    ctx = Context.create(progress=False)
    missing = [m for m in METHODS if m not in ctx.registry.methods()]
    if missing:
        pytest.skip(f"methods not installed: {missing}")
    return ctx, refs_from_dir(root), choose_methods(ctx, METHODS)


def _timed(ctx: Context, refs: list, methods: list, out: Path, executor: object) -> float:
    plan = RunPlan(tuple(refs), tuple(methods), out, metrics=("loss", "bleu"), progress=False)
    t0 = time.perf_counter()
    results = execute(ctx, plan, executor)  # type: ignore[arg-type]
    assert {r.status for r in results} <= {"ok", "n/a"}
    return time.perf_counter() - t0


def test_parallel_speedup(benchmark, grid: tuple[Context, list, list], tmp_path: Path) -> None:  # noqa: ANN001
    ctx, refs, methods = grid
    ray = pytest.importorskip("ray")
    serial = _timed(ctx, refs, methods, tmp_path / "serial", SerialExecutor())
    jobs = _timed(ctx, refs, methods, tmp_path / "jobs", ProcessExecutor(2))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path / "ray"), log_to_driver=False)
    startup = time.perf_counter() - t0
    try:
        on_ray = benchmark.pedantic(_timed, args=(ctx, refs, methods, tmp_path / "ray_out", RayExecutor()), rounds=1, iterations=1)
    finally:
        ray.shutdown()
    benchmark.extra_info.update(serial_s=serial, jobs2_s=jobs, ray_s=on_ray, ray_startup_s=startup,
                                jobs2_speedup=serial / jobs, ray_speedup=serial / on_ray)
    print(f"\nserial {serial:.1f}s | --jobs 2 {jobs:.1f}s ({serial / jobs:.2f}x) | "
          f"ray {on_ray:.1f}s ({serial / on_ray:.2f}x), ray start-up {startup:.1f}s")


def _timed_record(out: Path, executor: object) -> float:
    from tdabench.recorder.record import RecordSpec, record
    from tdabench.recorder.train import Schedule

    # 8 runs of 32 steps of the 1M model with 128 test examples: long enough that spawning
    # workers (importing torch and transformers) is a small part of the time.
    spec = RecordSpec(model="neox-1m", task="sentiment", runs=8, unseen_runs=0, schedule=Schedule(lr=3e-3, epochs=1, sample=128))
    t0 = time.perf_counter()
    record(spec, out, progress=False, executor=executor)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def test_record_parallel_speedup(benchmark, tmp_path: Path) -> None:  # noqa: ANN001
    import torch

    ray = pytest.importorskip("ray")
    serial = _timed_record(tmp_path / "serial", SerialExecutor())
    threads = torch.get_num_threads()
    jobs = _timed_record(tmp_path / "jobs", ProcessExecutor(2))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path / "ray"), log_to_driver=False)
    startup = time.perf_counter() - t0
    try:
        on_ray = benchmark.pedantic(_timed_record, args=(tmp_path / "ray_out", RayExecutor()), rounds=1, iterations=1)
    finally:
        ray.shutdown()
    benchmark.extra_info.update(serial_s=serial, serial_threads=threads, jobs2_s=jobs, ray_s=on_ray, ray_startup_s=startup,
                                jobs2_speedup=serial / jobs, ray_speedup=serial / on_ray)
    print(f"\nrecording 8 runs: serial ({threads} threads) {serial:.1f}s | --jobs 2 {jobs:.1f}s ({serial / jobs:.2f}x) | "
          f"ray {on_ray:.1f}s ({serial / on_ray:.2f}x), ray start-up {startup:.1f}s")
