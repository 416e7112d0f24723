"""Executors: where independent units of work run. In-process, local processes, or Ray.

An executor maps a picklable function over jobs, each a picklable argument plus the index of
a large shared input (a recording's task) that is shipped once per worker, and reports each
job as it finishes. The runner maps :func:`tdabench.run.worker.run_method` over its units (the
method side only: fit data and queries, never the truth) and the recorder maps one training
run per job. Results always travel through atomic files
written by the work itself, so a crashed worker or a killed driver loses at most the jobs
in flight, and rerunning the same command finishes only what is missing. tdabench has no
scheduler of its own: local processes are :class:`~tdabench.run.pool.WorkerPool`'s (``multiprocessing``
forkserver children), clusters are Ray's.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tdabench.errors import TDABenchError
from tdabench.run.pool import WorkerPool, reason
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


#: ``part(job index, item)``: one item of a job whose function is a generator, as it comes.
Part = Callable[[int, Any], None]


class Executor(Protocol):
    """Maps a function over jobs, calling ``report`` as each one completes (and ``part`` for
    each item a generator function yields)."""

    def map(self, fn: Callable[[Any, Any], Any], jobs: Iterable[Job], shared: Sequence[Any], report: Report,
            part: Part | None = None) -> None:
        """Run every job; return when all are done, failed or lost."""
        ...


def _drain(value: Any, i: int, part: Part | None) -> Any:
    """Deliver the items of a generator result to ``part``; other results pass through."""
    if not isinstance(value, Iterator):
        return value
    for item in value:
        if part is not None:
            part(i, item)
    return None


class SerialExecutor:
    """In this process, one job after another (the recorder's ``--jobs 1``: its runs are our own
    code, so they need no isolation, and a serial recording shows each run's step bar)."""

    def map(self, fn: Callable[[Any, Any], Any], jobs: Iterable[Job], shared: Sequence[Any], report: Report,
            part: Part | None = None) -> None:
        for i, job in enumerate(jobs):
            try:
                value, error = _drain(fn(job.arg, shared[job.shared_index] if shared else None), i, part), None
            except Exception as exc:  # reported like a lost worker; the other jobs go on
                value, error = None, reason(exc)
            report(i, value, error, 0)


@dataclass
class RayExecutor:
    """Ray tasks (``--executor ray [--ray-address ADDR]``): one task per job, shared inputs
    put into the object store once, each task's resources from the job's declared needs."""

    address: str | None = None
    timeout: float | None = None

    def map(self, fn: Callable[[Any, Any], Any], jobs: Iterable[Job], shared: Sequence[Any], report: Report,
            part: Part | None = None) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        refs = [ray.put(s) for s in shared]  # shipped once, not with every task
        remote = ray.remote(max_retries=0)(_call)  # a retried job could be computed twice
        pending: dict[Any, int] = {}
        started: dict[Any, float] = {}
        for i, job in enumerate(jobs):
            res = job.resources
            opts: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus}
            if res.memory_mb:
                opts["memory"] = int(res.memory_mb * 2**20)
            ref = remote.options(**opts).remote(fn, job.arg, refs[job.shared_index] if refs else None)
            pending[ref], started[ref] = i, time.monotonic()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=self.timeout)
            if not done and self.timeout is not None:  # nothing finished in time: end the overdue ones
                for ref in [r for r in pending if time.monotonic() - started[r] >= self.timeout]:
                    ray.cancel(ref, force=True)
                    report(pending.pop(ref), None, f"timed out after {self.timeout:g} s (--timeout)", len(pending))
                continue
            for ref in done:
                i = pending.pop(ref)
                try:
                    value, error = _drain(ray.get(ref), i, part), None
                except ray.exceptions.RayTaskError as exc:  # the function raised: its own error
                    cause = getattr(exc, "cause", None)
                    value, error = None, reason(cause if isinstance(cause, BaseException) else exc)
                except Exception as exc:  # a dead worker, or a task Ray could not run
                    value, error = None, f"worker lost: {reason(exc)}"
                report(i, value, error, len(pending))


def _call(fn: Callable[[Any, Any], Any], arg: Any, shared: Any) -> Any:
    """``fn(arg, shared)`` in a Ray task, a generator's items collected (a task returns once)."""
    value = fn(arg, shared)
    return iter(list(value)) if isinstance(value, Iterator) else value


def import_ray() -> Any:
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise TDABenchError("the Ray executor needs Ray: pip install 'tdabench[ray]'") from None
    return ray


def make_executor(name: str, jobs: int = 1, ray_address: str | None = None, *, isolate: bool = True,
                  timeout: float | None = None) -> Executor:
    """The executor for ``--executor NAME --jobs N [--timeout S]``.

    Local jobs run in worker processes (:class:`~tdabench.run.pool.WorkerPool`), one at a time
    for ``--jobs 1``; with ``isolate=False`` (the recorder) a single job stream runs here.
    """
    if jobs < 1:
        raise TDABenchError(f"--jobs must be at least 1, got {jobs}")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise TDABenchError(f"--timeout must be a finite number of seconds > 0, got {timeout:g}")
    if name == "local":
        return SerialExecutor() if jobs == 1 and not isolate and timeout is None else WorkerPool(jobs, timeout)
    if name == "ray":
        import_ray()  # fail before any work starts, not at the first job
        return RayExecutor(ray_address, timeout)
    raise TDABenchError(f"unknown executor {name!r} (choose local or ray)")


def seconds(text: str) -> float:
    """A ``--timeout`` value: a finite number of seconds > 0 (``inf``, ``nan``, ``0`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r} (for no limit, leave --timeout out)")
    return value


def add_executor_arguments(parser: argparse.ArgumentParser, units: str) -> None:
    """``--jobs``, ``--executor``, ``--ray-address`` and ``--timeout``, shared by ``run`` and ``record``."""
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help=f"run N {units} at once in worker processes (default: 1)")
    parser.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                        help=f"end any of the {units} whose own work (after its worker has started) runs longer (default: no limit)")
    parser.add_argument("--executor", default="local", metavar="local|ray", help=f"where the {units} execute (default: local)")
    parser.add_argument("--ray-address", metavar="ADDR", help="address of an existing Ray cluster (default: start a local one)")
