"""Executors: where independent units of work run. In-process, local processes, or Ray.

An executor maps a picklable function over jobs, each a picklable argument plus the index of
a large shared input (a benchmark, a recording's task) that is shipped once, and reports
each job as it finishes. The runner maps :func:`tdabench.cells.run_unit` over its grid and
the recorder maps one training run per job. Results always travel through atomic files
written by the work itself, so a crashed worker or a killed driver loses at most the jobs
in flight, and rerunning the same command finishes only what is missing. tdabench has no
scheduler of its own: processes come from ``concurrent.futures`` and clusters from Ray.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Protocol

from tdabench.errors import TDABenchError
from tdabench.simulator import Resources


@dataclass(frozen=True)
class Job:
    """One independent unit: ``fn(arg, shared[shared_index])``, scheduled by ``resources``."""

    arg: Any
    shared_index: int = 0
    resources: Resources = field(default_factory=Resources)


#: ``report(job index, value, error, running)``: ``error`` is a one-line reason when the job
#: raised or its worker was lost (``value`` is then None); ``running`` counts jobs in flight or queued.
Report = Callable[[int, Any, "str | None", int], None]


def _reason(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class Executor(Protocol):
    """Maps a function over jobs, calling ``report`` as each one completes."""

    def map(self, fn: Callable[[Any, Any], Any], jobs: Sequence[Job], shared: Sequence[Any], report: Report) -> None:
        """Run every job; return when all are done, failed or lost."""
        ...


class SerialExecutor:
    """In this process, one job after another (the default for ``--jobs 1``)."""

    def map(self, fn: Callable[[Any, Any], Any], jobs: Sequence[Job], shared: Sequence[Any], report: Report) -> None:
        for i, job in enumerate(jobs):
            try:
                value, error = fn(job.arg, shared[job.shared_index]), None
            except Exception as exc:  # reported like a lost worker; the other jobs go on
                value, error = None, _reason(exc)
            report(i, value, error, len(jobs) - i - 1)


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
    started torch's thread pools can deadlock. At most N jobs are in flight, so a worker
    that dies loses only those; the pool is then restarted for the rest."""

    jobs: int

    def map(self, fn: Callable[[Any, Any], Any], jobs: Sequence[Job], shared: Sequence[Any], report: Report) -> None:
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        queue = list(range(len(jobs)))[::-1]  # pop() from the end keeps the submission order
        while queue:
            with ProcessPoolExecutor(self.jobs, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,)) as pool:
                pending: dict[Future[Any], int] = {}
                broken = False
                while (queue and not broken) or pending:
                    while queue and not broken and len(pending) < self.jobs:
                        i = queue.pop()
                        pending[pool.submit(fn, jobs[i].arg, shared[jobs[i].shared_index])] = i
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = pending.pop(fut)
                        try:
                            value, error = fut.result(), None
                        except BrokenProcessPool as exc:  # a worker died: its pool is gone
                            broken = True
                            value, error = None, f"worker lost: {_reason(exc)}"
                        except Exception as exc:
                            value, error = None, _reason(exc)
                        report(i, value, error, len(pending) + len(queue))


@dataclass
class RayExecutor:
    """Ray tasks (``--executor ray [--ray-address ADDR]``): one task per job, shared inputs
    put into the object store once, each task's resources from the job's declared needs."""

    address: str | None = None

    def map(self, fn: Callable[[Any, Any], Any], jobs: Sequence[Job], shared: Sequence[Any], report: Report) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        refs = [ray.put(s) for s in shared]  # shipped once, not with every task
        remote = ray.remote(max_retries=0)(fn)  # a retried job could be computed twice
        pending: dict[Any, int] = {}
        for i, job in enumerate(jobs):
            res = job.resources
            opts: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus}
            if res.memory_mb:
                opts["memory"] = int(res.memory_mb * 2**20)
            pending[remote.options(**opts).remote(job.arg, refs[job.shared_index])] = i
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    value, error = ray.get(ref), None
                except ray.exceptions.RayTaskError as exc:  # the function raised: its own error
                    cause = getattr(exc, "cause", None)
                    value, error = None, _reason(cause if isinstance(cause, BaseException) else exc)
                except Exception as exc:  # a dead worker, or a task Ray could not run
                    value, error = None, f"worker lost: {_reason(exc)}"
                report(i, value, error, len(pending))


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
        import_ray()  # fail before any work starts, not at the first job
        return RayExecutor(ray_address)
    raise TDABenchError(f"unknown executor {name!r} (choose local or ray)")


def add_executor_arguments(parser: argparse.ArgumentParser, units: str) -> None:
    """``--jobs``, ``--executor`` and ``--ray-address``, shared by ``run`` and ``record``."""
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help=f"run N {units} at once in local processes (default: 1)")
    parser.add_argument("--executor", default="local", metavar="local|ray", help=f"where the {units} execute (default: local)")
    parser.add_argument("--ray-address", metavar="ADDR", help="address of an existing Ray cluster (default: start a local one)")
