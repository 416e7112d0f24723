"""The method side of a unit: fit and simulate, in a process that never sees the truth.

The runner sends a :class:`MethodJob` (the method, its config, and for each fit its
:class:`~tdabench.simulator.FitData` and the split queries it serves) to a worker process
and gets predictions back; it alone holds the evaluation trajectories and scores them. A
method's exception, ``sys.exit()`` included, becomes a failed fit or simulation; the worker
goes on with the next one.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.run.measure import Measure
from tdabench.simulator import FitData, MethodSpec, Query


@dataclass(frozen=True, eq=False)
class FitTask:
    """One fit and the queries it serves: ``fit`` names it (``all-test`` or ``withheld-test``)."""

    fit: str
    data: FitData
    queries: Mapping[str, Query]


@dataclass(frozen=True, eq=False)
class MethodJob:
    """Everything a worker needs for one unit: the method and its fits, nothing else."""

    spec: MethodSpec
    config: Any
    tasks: tuple[FitTask, ...]


@dataclass(frozen=True, eq=False)
class Simulated:
    """One query's prediction, or why there is none."""

    prediction: np.ndarray | None
    error: str | None
    seconds: float = 0.0
    peak_mb: float = 0.0


@dataclass(frozen=True, eq=False)
class Fitted:
    """One fit's outcome: its error, or its cost, fit info and every query's prediction."""

    fit: str
    error: str | None
    seconds: float = 0.0
    peak_mb: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)
    simulated: Mapping[str, Simulated] = field(default_factory=dict)


def describe(exc: BaseException, phase: str) -> str:
    """One line: phase, exception and where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return f"{phase}: {type(exc).__name__}: {msg}{where}"


def fit_info(sim: object) -> dict[str, Any]:
    """The simulator's optional ``fit_info()``, made JSON-safe; never fails the cell."""
    getter = getattr(sim, "fit_info", None)
    if getter is None:
        return {}
    try:
        info = json.loads(json.dumps(getter(), default=_jsonable))  # NaN and inf become None when the result is written
        return info if isinstance(info, dict) else {"fit_info": info}
    except Exception as exc:  # reporting must not turn a good fit into a failure
        return {"fit_info_error": f"{type(exc).__name__}: {exc}"}


def _jsonable(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def run_method(job: MethodJob, _shared: object = None) -> Iterator[Fitted]:
    """Fit the method once per task and simulate each of the task's queries; each fit's
    outcome is yielded as soon as it is known (the runner writes its cells right away).

    ``SystemExit`` is caught with every ``Exception``: a method that calls ``sys.exit()``
    fails its own cells, not the run.
    """
    for task in job.tasks:
        try:
            with Measure() as fm:
                sim = job.spec.create(job.config)
                fitted = sim.fit(task.data)
                if fitted is not sim:
                    raise TypeError("fit() must return the simulator itself (self)")
        except (Exception, SystemExit) as exc:  # a method's failure must not stop the run
            yield Fitted(task.fit, describe(exc, "fit"))
            continue
        sims: dict[str, Simulated] = {}
        for split, query in task.queries.items():
            try:
                with Measure() as sm:
                    pred = np.asarray(sim.simulate(query), dtype=np.float64)
                sims[split] = Simulated(pred, None, sm.seconds, sm.peak_mb)
            except (Exception, SystemExit) as exc:
                sims[split] = Simulated(None, describe(exc, "simulate"))
        del fitted
        yield Fitted(task.fit, None, fm.seconds, fm.peak_mb, fit_info(sim), sims)
        del sim
