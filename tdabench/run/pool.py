"""A pool of long-lived worker processes: the local executor of units and of recording runs.

Each worker is a separate process (forked from a clean server process, or spawned), so a job
runs in memory that holds only what was sent to it. The parent keeps at most one job in
flight per worker and controls every worker's life:

* a job that raises, even ``SystemExit``, is reported with its error; the worker goes on;
* every job starts in the state the worker started in, and what processes it started end with
  it: each worker leads its own process group (:mod:`tdabench.run.process`);
* a worker that dies (a crash, ``os._exit``, the OOM killer) loses only its own job, which is
  reported, and a fresh worker takes its place;
* a job running past ``timeout`` seconds of its own work (counted from when the worker has
  received it and starts it: the worker's start-up and the imports its job needs are not
  counted) has its worker's process group killed and is reported as timed out;
* when the parent stops (an error, Ctrl-C, SIGTERM) every worker is ended within seconds, and
  a worker whose parent was killed outright dies with it (Linux: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from tdabench.run.process import ProcessState, end_stragglers, kill_group, lead_group

#: Modules the fork server imports once, so that each worker starts in milliseconds.
PRELOAD = ["tdabench.run.worker"]
STOP_GRACE_S = 2.0
#: A worker gets this long (or ``timeout``, if longer) to start a job it was sent: its own
#: start-up and the imports of the job's modules, which ``timeout`` does not count.
STARTUP_S = 300.0


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def reason(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _serve(conn: Connection, threads: int) -> None:
    """A worker's loop: take the parent's environment, then receive shared inputs and jobs,
    run them, and send results back."""
    _die_with_parent()
    lead_group()  # what a job starts is in this group, and ends with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when work stops
    try:
        _, environ, path = conn.recv()
    except (EOFError, OSError):
        return
    # A fork server keeps the environment and sys.path it started with; a worker takes the
    # parent's as they are now (a plugin found through -p, a cache directory set since).
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # a method-free grid needs no torch
        pass
    fresh = ProcessState.capture()
    shared: dict[int, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        if msg[0] == "shared":
            shared[msg[1]] = msg[2]
            continue
        _, fn, arg, index = msg  # received: the job's modules are imported
        fresh.restore()  # as if in a fresh worker, whatever the last job changed
        conn.send(("started", None))  # the job's own time starts now (--timeout)
        try:
            value = fn(arg, shared.get(index))
            if isinstance(value, Iterator):  # a generator job streams its parts as they come
                for part in value:
                    conn.send(("part", part))
                value = None
            reply: tuple[str, Any] = ("ok", value)
        except BaseException as exc:  # noqa: BLE001 - a job's SystemExit is the job's error, not the worker's end
            reply = ("error", reason(exc))
        end_stragglers()  # what the job started and left running ends with it
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result
            conn.send(("error", f"the result could not be sent back: {reason(exc)}"))


def _context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: int | None = None
    started: float = 0.0  # when the job was sent, then when the worker started it
    begun: bool = False  # whether the worker has started the job (its own time runs)
    shared_sent: set[int] = field(default_factory=set)

    def deadline(self, timeout: float) -> float:
        """When the job is overdue: ``timeout`` after it started, or :data:`STARTUP_S` after it was sent."""
        return self.started + (timeout if self.begun else max(timeout, STARTUP_S))


@dataclass
class WorkerPool:
    """``jobs`` worker processes; ``timeout`` seconds per job (None: no limit).

    Implements :class:`tdabench.run.executors.Executor`; ``jobs`` may be a lazy iterable, consumed
    one job at a time as workers free up, so inputs are built only when they are needed.
    """

    jobs: int = 1
    timeout: float | None = None

    def _spawn(self, ctx: Any, threads: int) -> _Worker:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, threads), daemon=True)
        proc.start()
        child.close()
        parent.send(("env", dict(os.environ), list(sys.path)))
        return _Worker(proc, parent)

    def map(self, fn: Callable[[Any, Any], Any], jobs: Iterable[Any], shared: Sequence[Any],
            report: Callable[[int, Any, str | None, int], None], part: Callable[[int, Any], None] | None = None) -> None:
        """Run every job (``Job`` objects: ``arg``, ``shared_index``), calling ``report`` as each
        ends; a job whose function is a generator delivers each item to ``part`` on the way."""
        ctx = _context()
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        source = iter(enumerate(jobs))
        workers: list[_Worker] = []
        exhausted = False
        try:
            while True:
                while not exhausted and len([w for w in workers if w.job is not None]) < self.jobs:
                    nxt = next(source, None)
                    if nxt is None:
                        exhausted = True
                        break
                    i, job = nxt
                    idle = next((w for w in workers if w.job is None), None)
                    if idle is None:
                        idle = self._spawn(ctx, threads)
                        workers.append(idle)
                    k = job.shared_index if shared else -1
                    if k >= 0 and k not in idle.shared_sent:
                        idle.conn.send(("shared", k, shared[k]))
                        idle.shared_sent.add(k)
                    idle.conn.send(("job", fn, job.arg, k))
                    idle.job, idle.started, idle.begun = i, time.monotonic(), False
                busy = [w for w in workers if w.job is not None]
                if not busy:
                    if exhausted:
                        return
                    continue
                wait_s = None
                if self.timeout is not None:
                    wait_s = max(0.0, min(w.deadline(self.timeout) for w in busy) - time.monotonic())
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wait_s))
                now = time.monotonic()
                for w in busy:
                    held = w.job
                    if held is None:  # never: every busy worker holds a job
                        continue
                    running = len([x for x in workers if x.job is not None]) - 1
                    if w.conn in ready:
                        try:
                            status, value = w.conn.recv()
                        except (EOFError, OSError):
                            status, value = "lost", None
                        if status == "started":
                            w.started, w.begun = time.monotonic(), True
                            continue
                        if status == "part":
                            if part is not None:
                                part(held, value)
                            continue
                        if status != "lost":
                            w.job = None
                            report(held, value if status == "ok" else None, None if status == "ok" else str(value), running)
                            continue
                    if w.conn in ready or w.process.sentinel in ready:
                        self._retire(w, workers)
                        code = w.process.exitcode
                        report(held, None, f"worker lost (exit code {code})", running)
                    elif self.timeout is not None and now >= w.deadline(self.timeout):
                        begun = w.begun
                        self._retire(w, workers)
                        why = (f"timed out after {self.timeout:g} s (--timeout)" if begun else
                               f"timed out before it started: the worker's start-up and imports took over {max(self.timeout, STARTUP_S):g} s")
                        report(held, None, why, running)
        finally:
            for w in workers:
                try:
                    w.conn.send(("stop",))
                except (OSError, ValueError):
                    pass
            deadline = time.monotonic() + STOP_GRACE_S
            for w in workers:
                w.process.join(max(0.0, deadline - time.monotonic()) if w.job is None else 0.0)
                if w.process.is_alive():
                    kill_group(w.process.pid)
                    w.process.kill()
                    w.process.join(STOP_GRACE_S)
                w.conn.close()

    @staticmethod
    def _retire(w: _Worker, workers: list[_Worker]) -> None:
        """End a worker (dead or overdue) with every process its job started, and drop it; a fresh
        one is spawned when needed."""
        kill_group(w.process.pid)  # the worker leads its group: the job's processes too, even if the worker died
        if w.process.is_alive():
            w.process.kill()
        w.process.join(STOP_GRACE_S)
        w.conn.close()
        workers.remove(w)
