"""What a worker process does around each job: its own process group, and a clean state.

* A worker leads its own process group (:func:`lead_group`), so every process a job starts
  belongs to it. When the job ends, the processes it left running are killed
  (:func:`end_stragglers`); when the parent ends a worker (a timeout, a lost worker, the end
  of the run) it kills the whole group (:func:`kill_group`). A child a method started cannot
  outlive its unit and hold the caller's output open (``out=$(tdabench run ...)``), unless it
  leaves the group on purpose (``setsid``).
* Process-wide state a job may change (numpy's error handling and global RNG, Python's
  ``random``, torch's RNG, threads, default dtype and grad mode, the environment, working
  directory, ``sys.path``, warning filters, umask) is captured once when the worker starts
  (:meth:`ProcessState.capture`) and put back before every job (:meth:`ProcessState.restore`):
  every job starts as in a fresh worker.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


def lead_group() -> None:
    """Make this process the leader of a new process group (its pid is the group's id)."""
    try:
        os.setpgid(0, 0)
    except OSError:  # already a session or group leader: nothing to do
        pass


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group ``pgid`` (a worker and what its jobs started); quiet if none is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _members(pgid: int) -> list[int]:
    """The other live processes of group ``pgid`` (Linux ``/proc``)."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            found.append(int(name))
    return found


def end_stragglers() -> int:
    """Kill the processes of this worker's group other than itself (what the last job left running); return how many."""
    me = os.getpid()
    if os.getpgrp() != me:  # not our own group: nothing in it is the job's alone
        return 0
    if not os.path.isdir("/proc"):  # elsewhere: signal the group, this process ignoring it
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            os.killpg(me, signal.SIGTERM)
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        return 0
    killed = 0
    for _ in range(3):  # a process may fork while we look: look again
        pids = _members(me)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


@dataclass(frozen=True)
class ProcessState:
    """Process-wide settings a job may change, as they were when the worker started."""

    np_err: dict[str, str]
    np_random: Any
    py_random: Any
    environ: dict[str, str]
    cwd: str
    path: list[str]
    filters: list[Any]
    umask: int
    torch: dict[str, Any] | None

    @classmethod
    def capture(cls) -> ProcessState:
        """The state now."""
        umask = os.umask(0)
        os.umask(umask)
        torch = sys.modules.get("torch")
        t = None
        if torch is not None:
            t = {"rng": torch.random.get_rng_state(), "threads": torch.get_num_threads(), "dtype": torch.get_default_dtype(),
                 "grad": torch.is_grad_enabled(), "deterministic": torch.are_deterministic_algorithms_enabled()}
        return cls({k: str(v) for k, v in np.geterr().items()}, np.random.get_state(), random.getstate(), dict(os.environ), os.getcwd(), list(sys.path),
                   list(warnings.filters), umask, t)

    def restore(self) -> None:
        """Put every setting back as it was captured."""
        np.seterr(**self.np_err)  # type: ignore[arg-type]
        np.seterrcall(None)
        np.random.set_state(self.np_random)
        random.setstate(self.py_random)
        if os.environ != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        try:
            if os.getcwd() != self.cwd:
                os.chdir(self.cwd)
        except OSError:
            os.chdir(self.cwd)
        sys.path[:] = self.path
        warnings.filters[:] = self.filters  # type: ignore[index]  # typeshed types the list as a Sequence
        mutated = getattr(warnings, "_filters_mutated", None)  # the warnings module caches what the filters decide
        if mutated is not None:
            mutated()
        os.umask(self.umask)
        torch = sys.modules.get("torch")
        if torch is not None and self.torch is not None:
            torch.random.set_rng_state(self.torch["rng"])
            if torch.get_num_threads() != self.torch["threads"]:
                torch.set_num_threads(self.torch["threads"])
            torch.set_default_dtype(self.torch["dtype"])
            torch.set_grad_enabled(self.torch["grad"])
            torch.use_deterministic_algorithms(self.torch["deterministic"])
