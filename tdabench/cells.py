"""One unit of work: a method on one benchmark and trajectory metric, fitted once, then
simulated and scored on each split.

Units are independent and picklable, so any executor (in-process, local processes, Ray) can
run them; each writes its cells' result files atomically as soon as they are known.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.data import Benchmark
from tdabench.metrics import score
from tdabench.measure import Measure
from tdabench.results import CellResult, cell_key, provenance, read_result, result_path, write_result
from tdabench.errors import TDABenchError
from tdabench.simulator import MethodSpec, config_dict
from tdabench.views import fit_data, not_applicable, split_view


@dataclass(frozen=True)
class MethodChoice:
    """A method under one config, shown as ``display`` (distinct per choice)."""

    display: str
    spec: MethodSpec
    config: Any


@dataclass(frozen=True)
class Unit:
    """A method on one benchmark and metric, with the settings its cells need."""

    choice: MethodChoice
    benchmark: str
    metric: str
    splits: tuple[str, ...]
    out: Path
    force: bool
    seed: int
    cache_dir: str
    device: str

    @property
    def label(self) -> str:
        """Short name for progress and error reports."""
        return f"{self.choice.display} on {self.benchmark} ({self.metric})"


def lost_cells(unit: Unit, bench: Benchmark, why: str) -> list[CellResult]:
    """Failed cells (not written, so a rerun retries them) for a unit whose worker died."""
    return [
        CellResult(
            status="failed", method=unit.choice.display, method_name=unit.choice.spec.name, config={},
            origin=unit.choice.spec.origin, benchmark=bench.id, data_hash=bench.content_hash,
            metric=unit.metric, split=split, seed=unit.seed, key="", error=why,
        )
        for split in unit.splits
    ]


def run_unit(unit: Unit, bench: Benchmark) -> list[CellResult]:
    """The cells of one unit: one fit, one simulate per split; failures become failed cells."""
    choice, metric = unit.choice, unit.metric
    config = config_dict(choice.config)
    base = dict(
        method=choice.display,
        method_name=choice.spec.name,
        config=config,
        origin=choice.spec.origin,
        benchmark=bench.id,
        data_hash=bench.content_hash,
        metric=metric,
        seed=unit.seed,
    )
    todo: dict[str, CellResult] = {}
    done: list[CellResult] = []
    for split in unit.splits:
        key = cell_key(choice.spec.name, config, bench.id, bench.content_hash, metric, split, unit.seed)
        cell = CellResult(status="ok", split=split, key=key, **base)  # type: ignore[arg-type]
        existing = _reusable(unit.out, cell, unit.force)
        if existing is not None:
            done.append(existing)
            continue
        reason = (
            f"the benchmark records no {metric!r} trajectories" if metric not in bench.metrics
            else not_applicable(bench, split, metric, choice.spec.capabilities)
        )
        if reason:
            cell.status, cell.reason = "n/a", reason
            done.append(_finish(unit.out, cell, None))
        else:
            todo[split] = cell
    if not todo:
        return done
    caps = choice.spec.capabilities
    try:
        with Measure() as fit_m:
            sim = choice.spec.create(choice.config)
            data = fit_data(
                bench, metric, seed=unit.seed, with_model=caps.needs_checkpoints,
                cache_dir=unit.cache_dir, device=unit.device,
            )
            fitted = sim.fit(data)
            if fitted is not sim:
                raise TypeError("fit() must return the simulator itself (self)")
    except Exception as exc:  # a method's failure must not stop the run
        for cell in todo.values():
            cell.status, cell.error = "failed", _describe(exc, "fit")
            done.append(_finish(unit.out, cell, None))
        return done
    info = _fit_info(sim)
    for split, cell in todo.items():
        cell.fit_s = round(fit_m.seconds, 4)
        cell.fit_info = info
        view = split_view(bench, split, metric, seed=unit.seed)
        try:
            with Measure() as sim_m:
                pred = sim.simulate(view.query)
            pred = _validated(pred, view.query.shape, view.query.initial)
            cell.metrics = score(pred, view.truth)
            cell.simulate_s = round(sim_m.seconds, 4)
            cell.peak_mem_mb = round(max(fit_m.peak_mb, sim_m.peak_mb), 1)
            cell.n_runs, cell.n_test = view.truth.shape[:2]
            extra = {"runs": np.array(view.query.runs.names), "test_ids": view.query.test.ids, "steps": view.query.runs.steps}
            done.append(_finish(unit.out, cell, pred, extra))
        except Exception as exc:
            cell.status, cell.error = "failed", _describe(exc, "simulate")
            done.append(_finish(unit.out, cell, None))
    return done


def _fit_info(sim: object) -> dict[str, Any]:
    """The simulator's optional ``fit_info()``, made JSON-safe; never fails the cell."""
    getter = getattr(sim, "fit_info", None)
    if getter is None:
        return {}
    try:
        return json.loads(json.dumps(getter(), default=_jsonable))
    except Exception as exc:  # reporting must not turn a good fit into a failure
        return {"fit_info_error": f"{type(exc).__name__}: {exc}"}


def _jsonable(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _validated(pred: object, shape: tuple[int, int, int], initial: np.ndarray) -> np.ndarray:
    """A simulator's output, checked: right shape, finite, starting at the initial value."""
    arr = np.asarray(pred, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"simulate() returned shape {arr.shape}, expected {shape} (runs, test examples, steps)")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"simulate() returned {bad} NaN or infinite values")
    if not np.allclose(arr[:, :, 0], initial, rtol=1e-5, atol=1e-6):
        raise ValueError("simulate() must start every trajectory at query.initial (column 0)")
    return arr


def _describe(exc: BaseException, phase: str) -> str:
    """One line: phase, exception and where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return f"{phase}: {type(exc).__name__}: {msg}{where}"


def _reusable(out: Path, cell: CellResult, force: bool) -> CellResult | None:
    """The stored result of this cell if it has the same key and did not fail."""
    if force:
        return None
    path = result_path(out, cell.benchmark, cell.metric, cell.split, cell.method)
    if not path.is_file():
        return None
    try:
        old = read_result(path)
    except TDABenchError:
        return None  # unreadable or old schema: recompute and overwrite
    return old if old.key == cell.key and old.status != "failed" else None


def _finish(out: Path, cell: CellResult, pred: np.ndarray | None, extra: dict[str, np.ndarray] | None = None) -> CellResult:
    cell.provenance = provenance(cell.seed)
    write_result(out, cell, pred, extra)
    return cell
