"""Parallel speed-up of the run grid and of recording: serial vs --jobs 2 vs a local Ray with 2 CPUs.

Run: python -m pytest tests/benchmarks/test_bench_executors.py --benchmark-only -s
The ratios (target >= 1.7x on 2 cores) and Ray's start-up overhead are printed and stored in
the benchmark's extra_info.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from torchthreads import one_thread

from tdabench.run.context import Context
from tdabench.run.executors import RayExecutor, SerialExecutor
from tdabench.run.pool import WorkerPool
from tdabench.run.runner import RunPlan, choose_methods, execute
from tdabench.sources.gptdynamics import resolve_benchmarks

METHODS = ["gptfluence", "tracin-cp", "grad-dot", "simfluence-linear"]
BENCHMARKS = ["builtin/ft/neox-1m/sentiment", "builtin/ft/neox-1m/entailment"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Context, list, list]:
    """8 units of real work: 4 methods x 2 built-in benchmarks, every split, loss.

    A warm-up run extracts the benchmarks, regenerates their checkpoints and fills the text
    embedding cache, so every timed run starts from the same state; the gradient score-table
    cache is emptied before each timed run, so each one computes its tables.
    """
    ctx = Context.create(progress=False, cache_dir=tmp_path_factory.mktemp("cache"))
    missing = [m for m in METHODS if m not in ctx.registry.methods()]
    if missing:
        pytest.skip(f"methods not installed: {missing}")
    refs = resolve_benchmarks(ctx, BENCHMARKS)
    methods = choose_methods(ctx, METHODS)
    _timed(ctx, refs, methods, tmp_path_factory.mktemp("warmup"), SerialExecutor())
    return ctx, refs, methods


def _timed(ctx: Context, refs: list, methods: list, out: Path, executor: object) -> float:
    shutil.rmtree(Path(ctx.cache_dir) / "gradients" / "tables", ignore_errors=True)
    plan = RunPlan(tuple(refs), tuple(methods), out, progress=False)
    t0 = time.perf_counter()
    results = execute(ctx, plan, executor)  # type: ignore[arg-type]
    assert {r.status for r in results} <= {"ok", "n/a"}
    return time.perf_counter() - t0


def test_parallel_speedup(benchmark, grid: tuple[Context, list, list], tmp_path: Path) -> None:  # noqa: ANN001
    ctx, refs, methods = grid
    ray = pytest.importorskip("ray")
    serial = _timed(ctx, refs, methods, tmp_path / "serial", SerialExecutor())
    with one_thread():
        serial_1 = _timed(ctx, refs, methods, tmp_path / "serial1", SerialExecutor())
    jobs = _timed(ctx, refs, methods, tmp_path / "jobs", WorkerPool(2))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="ray-"), log_to_driver=False)
    startup = time.perf_counter() - t0
    try:
        on_ray = benchmark.pedantic(_timed, args=(ctx, refs, methods, tmp_path / "ray_out", RayExecutor()), rounds=1, iterations=1)
    finally:
        ray.shutdown()
    benchmark.extra_info.update(serial_s=serial, serial_1thread_s=serial_1, jobs2_s=jobs, ray_s=on_ray, ray_startup_s=startup,
                                jobs2_speedup=serial / jobs, ray_speedup=serial / on_ray,
                                jobs2_speedup_vs_1thread=serial_1 / jobs, ray_speedup_vs_1thread=serial_1 / on_ray)
    print(f"\ngrid: serial {serial:.1f}s, serial on 1 thread {serial_1:.1f}s | --jobs 2 {jobs:.1f}s ({serial / jobs:.2f}x; "
          f"{serial_1 / jobs:.2f}x vs 1 thread) | ray {on_ray:.1f}s ({serial / on_ray:.2f}x; {serial_1 / on_ray:.2f}x vs 1 thread), "
          f"ray start-up {startup:.1f}s")


def _timed_record(out: Path, executor: object) -> float:
    from tdabench.recorder.record import RecordSpec, record
    from tdabench.recorder.train import Schedule

    # 4 bank-size runs (96 steps) of the 1M model with 128 test examples: long enough that
    # spawning workers (importing torch and transformers) is a small part of the time.
    spec = RecordSpec(model="neox-1m", task="sentiment", runs=4, unseen_runs=0, schedule=Schedule(lr=3e-3))
    t0 = time.perf_counter()
    record(spec, out, progress=False, executor=executor)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def test_record_parallel_speedup(benchmark, tmp_path: Path) -> None:  # noqa: ANN001
    import torch

    ray = pytest.importorskip("ray")
    serial = _timed_record(tmp_path / "serial", SerialExecutor())
    threads = torch.get_num_threads()
    with one_thread():
        serial_1 = _timed_record(tmp_path / "serial1", SerialExecutor())
    jobs = _timed_record(tmp_path / "jobs", WorkerPool(2))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="ray-"), log_to_driver=False)
    startup = time.perf_counter() - t0
    try:
        on_ray = benchmark.pedantic(_timed_record, args=(tmp_path / "ray_out", RayExecutor()), rounds=1, iterations=1)
    finally:
        ray.shutdown()
    benchmark.extra_info.update(serial_s=serial, serial_threads=threads, serial_1thread_s=serial_1, jobs2_s=jobs, ray_s=on_ray,
                                ray_startup_s=startup, jobs2_speedup=serial / jobs, ray_speedup=serial / on_ray,
                                jobs2_speedup_vs_1thread=serial_1 / jobs, ray_speedup_vs_1thread=serial_1 / on_ray)
    print(f"\nrecording 4 runs: serial ({threads} threads) {serial:.1f}s, serial on 1 thread {serial_1:.1f}s | --jobs 2 {jobs:.1f}s "
          f"({serial / jobs:.2f}x; {serial_1 / jobs:.2f}x vs 1 thread) | ray {on_ray:.1f}s ({serial / on_ray:.2f}x; "
          f"{serial_1 / on_ray:.2f}x vs 1 thread), ray start-up {startup:.1f}s")


def test_isolation_overhead(benchmark, grid: tuple[Context, list, list], tmp_path: Path) -> None:  # noqa: ANN001
    """Worker-process isolation (the default of `tdabench run`, --jobs 1) against the same units
    in this process: the target is at most 20% more wall time. A worker per unit costs its
    start (importing torch and transformers in a forkserver child) and shipping FitData."""
    ctx, refs, methods = grid
    in_process = _timed(ctx, refs, methods, tmp_path / "serial", SerialExecutor())
    isolated = benchmark.pedantic(_timed, args=(ctx, refs, methods, tmp_path / "isolated", WorkerPool(1)), rounds=1, iterations=1)
    overhead = isolated / in_process - 1.0
    benchmark.extra_info.update(in_process_s=in_process, isolated_s=isolated, overhead=overhead)
    print(f"\nisolation: in-process {in_process:.1f}s, worker processes {isolated:.1f}s, overhead {overhead:+.1%}")
    assert overhead <= 0.20, f"worker isolation costs {overhead:.0%} over running in-process (target: at most 20%)"
