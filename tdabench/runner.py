"""The runner: for each (method, benchmark, metric), fit once, then simulate and score each split.

It is the only holder of evaluation trajectories (through :mod:`tdabench.views`). Every cell
writes its result atomically as soon as it is known; a cell whose result exists with the same
key is reused unless ``force``; a failing method is recorded and the run goes on.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tdabench.config import parse_method_arg, read_method_file
from tdabench.context import Context
from tdabench.data import SPLITS, Benchmark
from tdabench.errors import ConfigError, TDABenchError
from tdabench.metrics import score
from tdabench.resources import Measure
from tdabench.results import CellResult, cell_key, provenance, read_result, result_path, write_result
from tdabench.simulator import MethodSpec, config_dict
from tdabench.sources import BenchmarkRef
from tdabench.views import check_split_name, fit_data, not_applicable, split_view


@dataclass(frozen=True)
class MethodChoice:
    """A method under one config, shown as ``display`` (distinct per choice)."""

    display: str
    spec: MethodSpec
    config: Any


def choose_methods(context: Context, args: Sequence[str], config_file: str | Path | None = None) -> list[MethodChoice]:
    """Methods from ``--method NAME[:key=value,...]`` values and a ``--config`` file.

    With neither, every registered method under its default config. Display names must be
    distinct: the same method under two configs gets ``NAME:key=value`` or its file label.
    """
    entries: list[tuple[str, str | None, dict[str, Any]]] = [(n, None, ov) for n, ov in map(parse_method_arg, args)]
    if config_file is not None:
        entries += read_method_file(config_file)
    if not entries:
        return [MethodChoice(name, spec, spec.make_config()) for name, spec in sorted(context.registry.methods().items())]
    out: list[MethodChoice] = []
    for name, label, overrides in entries:
        spec = context.registry.method(name)
        display = label or name + (":" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) if overrides else "")
        if any(c.display == display for c in out):
            raise ConfigError(f"method {display!r} is given twice; give one a different label or options")
        out.append(MethodChoice(display, spec, spec.make_config(overrides)))
    return out


@dataclass(frozen=True)
class RunPlan:
    """What ``tdabench run`` evaluates; validated on construction."""

    benchmarks: tuple[BenchmarkRef, ...]
    methods: tuple[MethodChoice, ...]
    out: Path
    splits: tuple[str, ...] = SPLITS
    metrics: tuple[str, ...] = ("loss",)
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for s in self.splits:
            check_split_name(s)
        if not self.benchmarks:
            raise TDABenchError("nothing to run: no benchmark selected")
        if not self.methods:
            raise TDABenchError("nothing to run: no method is registered (see `tdabench list methods`)")


def execute(context: Context, plan: RunPlan) -> list[CellResult]:
    """Run every cell of ``plan``; return the results (reused, new, n/a and failed)."""
    results: list[CellResult] = []
    with tqdm(total=len(plan.benchmarks), desc="benchmarks", unit="bench", disable=None if plan.progress and len(plan.benchmarks) > 1 else True) as outer:
        for ref in plan.benchmarks:
            bench = ref.load()
            metrics = bench.metrics if plan.metrics == ("all",) else plan.metrics
            n_cells = len(metrics) * len(plan.methods) * len(plan.splits)
            with tqdm(total=n_cells, desc=bench.id, unit="cell", disable=None if plan.progress else True, leave=False) as bar:
                for metric in metrics:
                    for choice in plan.methods:
                        results += _method_cells(context, plan, bench, metric, choice, bar)
            outer.update(1)
    return results


def _method_cells(context: Context, plan: RunPlan, bench: Benchmark, metric: str, choice: MethodChoice, bar: tqdm) -> list[CellResult]:
    """The cells of one method on one benchmark and metric: one fit, one simulate per split."""
    config = config_dict(choice.config)
    base = dict(
        method=choice.display,
        method_name=choice.spec.name,
        config=config,
        origin=choice.spec.origin,
        benchmark=bench.id,
        data_hash=bench.content_hash,
        metric=metric,
        seed=context.seed,
    )
    todo: dict[str, CellResult] = {}
    done: list[CellResult] = []
    for split in plan.splits:
        key = cell_key(choice.spec.name, config, bench.id, bench.content_hash, metric, split, context.seed)
        cell = CellResult(status="ok", split=split, key=key, **base)  # type: ignore[arg-type]
        existing = _reusable(plan.out, cell, plan.force)
        if existing is not None:
            done.append(existing)
            bar.update(1)
            continue
        reason = (
            f"the benchmark records no {metric!r} trajectories" if metric not in bench.metrics
            else not_applicable(bench, split, metric, choice.spec.capabilities)
        )
        if reason:
            cell.status, cell.reason = "n/a", reason
            done.append(_finish(plan.out, cell, None, bar))
        else:
            todo[split] = cell
    if not todo:
        return done
    caps = choice.spec.capabilities
    try:
        with Measure() as fit_m:
            sim = choice.spec.create(choice.config)
            data = fit_data(
                bench, metric, seed=context.seed, with_model=caps.needs_checkpoints,
                cache_dir=str(context.cache_dir), device=context.device,
            )
            fitted = sim.fit(data)
            if fitted is not sim:
                raise TypeError("fit() must return the simulator itself (self)")
    except Exception as exc:  # a method's failure must not stop the run
        for cell in todo.values():
            cell.status, cell.error = "failed", _describe(exc, "fit")
            done.append(_finish(plan.out, cell, None, bar))
        return done
    info = _fit_info(sim)
    for split, cell in todo.items():
        cell.fit_s = round(fit_m.seconds, 4)
        cell.fit_info = info
        view = split_view(bench, split, metric, seed=context.seed)
        try:
            with Measure() as sim_m:
                pred = sim.simulate(view.query)
            pred = _validated(pred, view.query.shape, view.query.initial)
            cell.metrics = score(pred, view.truth)
            cell.simulate_s = round(sim_m.seconds, 4)
            cell.peak_mem_mb = round(max(fit_m.peak_mb, sim_m.peak_mb), 1)
            cell.n_runs, cell.n_test = view.truth.shape[:2]
            extra = {"runs": np.array(view.query.runs.names), "test_ids": view.query.test.ids, "steps": view.query.runs.steps}
            done.append(_finish(plan.out, cell, pred, bar, extra))
        except Exception as exc:
            cell.status, cell.error = "failed", _describe(exc, "simulate")
            done.append(_finish(plan.out, cell, None, bar))
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


def _finish(out: Path, cell: CellResult, pred: np.ndarray | None, bar: tqdm, extra: dict[str, np.ndarray] | None = None) -> CellResult:
    cell.provenance = provenance(cell.seed)
    write_result(out, cell, pred, extra)
    bar.update(1)
    return cell
