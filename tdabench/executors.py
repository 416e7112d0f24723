"""Executors: where independent units of work run. In-process, local processes, or Ray.

Every executor takes the same ``(unit, benchmark index)`` jobs and reports each unit's cells
as it finishes; results always travel through the atomic result files, so a crashed worker
or a killed driver loses at most the units in flight, and rerunning the same command
finishes only what is missing. tdabench has no scheduler of its own: processes come from
``concurrent.futures`` and clusters from Ray.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Protocol

from tdabench.cells import Unit, run_unit
from tdabench.data import Benchmark
from tdabench.errors import TDABenchError
from tdabench.results import CellResult

#: (units done, units running, units failed), reported after every change.
Progress = Callable[[list[CellResult], int], None]
Job = tuple[Unit, int]  # a unit and the index of its benchmark


def lost_unit(unit: Unit, bench: Benchmark, why: str) -> list[CellResult]:
    """Failed cells (not written, so a rerun retries them) for a unit whose worker died."""
    return [
        CellResult(
            status="failed", method=unit.choice.display, method_name=unit.choice.spec.name, config={},
            origin=unit.choice.spec.origin, benchmark=bench.id, data_hash=bench.content_hash,
            metric=unit.metric, split=split, seed=unit.seed, key="", error=f"worker lost: {why}",
        )
        for split in unit.splits
    ]


class Executor(Protocol):
    """Runs jobs, calling ``report(cells, running)`` as each unit completes."""

    def run(self, jobs: Sequence[Job], benches: Sequence[Benchmark], report: Progress) -> None:
        """Run every job; return when all are done or lost."""
        ...


class SerialExecutor:
    """In this process, one unit after another (the default for ``--jobs 1``)."""

    def run(self, jobs: Sequence[Job], benches: Sequence[Benchmark], report: Progress) -> None:
        for i, (unit, b) in enumerate(jobs):
            report(run_unit(unit, benches[b]), 1 if i + 1 < len(jobs) else 0)


def _init_worker(threads: int) -> None:
    """Share the cores: each worker's torch and BLAS get their slice."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # a method-free grid needs no torch
        pass


@dataclass
class ProcessExecutor:
    """Local processes (``--jobs N``). Spawned, not forked: forking a process that has
    started torch's thread pools can deadlock. At most N units are in flight, so a worker
    that dies loses only those; the pool is then restarted for the rest."""

    jobs: int

    def run(self, jobs: Sequence[Job], benches: Sequence[Benchmark], report: Progress) -> None:
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        queue = list(jobs)[::-1]  # pop() from the end keeps the submission order
        while queue:
            with ProcessPoolExecutor(self.jobs, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,)) as pool:
                pending: dict[Future[list[CellResult]], Job] = {}
                broken = False
                while (queue and not broken) or pending:
                    while queue and not broken and len(pending) < self.jobs:
                        unit, b = queue.pop()
                        pending[pool.submit(run_unit, unit, benches[b])] = (unit, b)
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        unit, b = pending.pop(fut)
                        try:
                            cells = fut.result()
                        except BrokenProcessPool as exc:  # a worker died: its pool is gone
                            broken = True
                            cells = lost_unit(unit, benches[b], f"{type(exc).__name__}: {exc}")
                        report(cells, len(pending) + len(queue))


@dataclass
class RayExecutor:
    """Ray tasks (``--executor ray [--ray-address ADDR]``): one task per unit, benchmarks put
    into the object store once, each task's resources from the method's declared needs."""

    address: str | None = None

    def run(self, jobs: Sequence[Job], benches: Sequence[Benchmark], report: Progress) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        refs = [ray.put(b) for b in benches]  # shipped once, not with every task
        remote = ray.remote(max_retries=0)(run_unit)  # a retried unit could be computed twice
        pending: dict[Any, Job] = {}
        for unit, b in jobs:
            res = unit.choice.spec.resources
            opts: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus}
            if res.memory_mb:
                opts["memory"] = int(res.memory_mb * 2**20)
            pending[remote.options(**opts).remote(unit, refs[b])] = (unit, b)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                unit, b = pending.pop(ref)
                try:
                    cells = ray.get(ref)
                except Exception as exc:  # a dead worker or a task error outside run_unit
                    cells = lost_unit(unit, benches[b], f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                report(cells, len(pending))


def import_ray() -> Any:
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise TDABenchError("the Ray executor needs Ray: pip install 'tdabench[ray]'") from None
    return ray


def make_executor(name: str, jobs: int = 1, ray_address: str | None = None) -> Executor:
    """The executor for ``--executor NAME --jobs N``."""
    if jobs < 1:
        raise TDABenchError(f"--jobs must be at least 1, got {jobs}")
    if name == "local":
        return SerialExecutor() if jobs == 1 else ProcessExecutor(jobs)
    if name == "ray":
        return RayExecutor(ray_address)
    raise TDABenchError(f"unknown executor {name!r} (choose local or ray)")
