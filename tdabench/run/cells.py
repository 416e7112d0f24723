"""The runner's side of a unit (a method on one benchmark and trajectory): plan, dispatch, score.

A unit's cells are its splits. :func:`plan_unit` reuses cells whose stored result has the
same key, writes the n/a ones (the runner has locked them all), builds the fit data and queries of the fits
they need (:mod:`tdabench.run.views`) and keeps their truth here. The method side runs elsewhere
(:func:`tdabench.run.worker.run_method`, in a worker process); :func:`finish_unit` validates and
scores what comes back and writes each cell atomically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.data import Benchmark
from tdabench.errors import TDABenchError
from tdabench.methods.zero_line import ZeroLine
from tdabench.results.record import CellResult, cell_key, predictions_readable, provenance, read_result, result_path, write_result
from tdabench.scores import OverflowingPrediction, Score, headroom
from tdabench.scoring import score_groups
from tdabench.simulator import MethodSpec, config_dict
from tdabench.run.locks import CellLocks
from tdabench.run.views import SPLIT_FIT, fit_data, group_rows, not_applicable, split_view
from tdabench.run.worker import Fitted, FitTask, MethodJob


@dataclass(frozen=True)
class MethodChoice:
    """A method under one config, shown as ``display`` (distinct per choice)."""

    display: str
    spec: MethodSpec
    config: Any


@dataclass(frozen=True)
class Unit:
    """A method on one benchmark and trajectory, with the settings its cells need."""

    choice: MethodChoice
    benchmark: str
    trajectory: str
    splits: tuple[str, ...]
    out: Path
    force: bool
    seed: int
    cache_dir: str
    device: str
    command: str = ""

    @property
    def label(self) -> str:
        """Short name for progress and error reports."""
        return f"{self.choice.display} on {self.benchmark} ({self.trajectory})"


def cell_names(unit: Unit) -> list[str]:
    """The unit's cells as result paths relative to ``--out``: what :class:`~tdabench.run.locks.CellLocks` locks."""
    return [_cell_name(unit, split) for split in unit.splits]


def _cell_name(unit: Unit, split: str) -> str:
    return str(result_path(unit.out, unit.benchmark, unit.trajectory, split, unit.choice.display, unit.seed).relative_to(unit.out))


@dataclass
class UnitState:
    """What the runner keeps of a dispatched unit: its pending cells and their truth."""

    unit: Unit
    bench: Benchmark
    todo: dict[str, CellResult]
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    reference: dict[str, np.ndarray | None] = field(default_factory=dict)
    queries: dict[str, Any] = field(default_factory=dict)
    locks: CellLocks | None = None
    held: list[str] = field(default_factory=list)

    def release(self) -> None:
        """Release the locks of the cells this unit computed (once)."""
        if self.locks is not None:
            self.locks.release(self.held)
        self.held.clear()


@dataclass
class Planned:
    """The outcome of planning a unit: cells already final, and the job for the rest."""

    done: list[CellResult]
    state: UnitState | None
    job: MethodJob | None
    replaced: list[str]


def stub(unit: Unit, bench: Benchmark, split: str) -> CellResult:
    """The cell's identity (key, method, data) before it has an outcome."""
    spec = unit.choice.spec
    config = config_dict(unit.choice.config)
    fit = SPLIT_FIT[split]
    key = cell_key(method_name=spec.name, method_version=spec.version, distribution=spec.distribution, config=config,
                   benchmark=bench.id, data_hash=bench.content_hash, trajectory=unit.trajectory, split=split, seed=unit.seed, fit=fit)
    return CellResult(status="ok", method=unit.choice.display, method_name=spec.name, config=config, origin=spec.origin,
                      benchmark=bench.id, data_hash=bench.content_hash, trajectory=unit.trajectory, split=split, seed=unit.seed,
                      key=key, method_version=spec.version, distribution=spec.distribution, fit=fit,
                      ranked=not spec.capabilities.reference)


def _reusable(unit: Unit, cell: CellResult, replaced: list[str]) -> CellResult | None:
    """The stored result of this cell if it has the same key, did not fail, and is whole.

    An unreadable result (JSON or predictions) is recomputed, and its file named in ``replaced``.
    """
    if unit.force:
        return None
    path = result_path(unit.out, cell.benchmark, cell.trajectory, cell.split, cell.method, cell.seed)
    if not path.is_file():
        return None
    try:
        old = read_result(path)
    except TDABenchError:
        replaced.append(str(path))
        return None
    if old.key != cell.key or old.status == "failed":
        return None
    if old.status == "ok" and not (old.predictions and predictions_readable(path.parent / old.predictions)):
        replaced.append(str(path.with_suffix(".npz")))
        return None
    return old


def _finish(unit: Unit, cell: CellResult, pred: np.ndarray | None = None, extra: dict[str, np.ndarray] | None = None) -> CellResult:
    return write_result(unit.out, dataclasses.replace(cell, provenance=provenance(unit.seed, unit.command)), pred, extra)


def plan_unit(unit: Unit, bench: Benchmark, locks: CellLocks | None = None) -> Planned:
    """Reuse, write n/a cells and build the job that computes the rest.

    ``locks`` holds every cell of the unit (taken by the runner before any unit starts): the
    cells that are final here are released at once, the others when the unit ends.
    """
    caps = unit.choice.spec.capabilities
    done: list[CellResult] = []
    replaced: list[str] = []
    todo: dict[str, CellResult] = {}
    for split in unit.splits:
        cell = stub(unit, bench, split)
        reason = not_applicable(bench, split, unit.trajectory, caps)
        existing = _reusable(unit, cell, replaced)
        if reason is None and existing is None:
            todo[split] = cell
            continue
        if reason is None:
            done.append(existing)  # type: ignore[arg-type]
        else:
            done.append(existing if existing is not None and existing.status == "n/a" else _finish(unit, dataclasses.replace(cell, status="n/a", reason=reason)))
        if locks is not None:
            locks.release([_cell_name(unit, split)])
    if not todo:
        return Planned(done, None, None, replaced)
    state = UnitState(unit, bench, todo, locks=locks, held=[_cell_name(unit, s) for s in todo])
    tasks = []
    for fit in dict.fromkeys(SPLIT_FIT[s] for s in todo):
        data = fit_data(bench, unit.trajectory, fit=fit, seed=unit.seed, with_model=caps.needs_checkpoints,
                        cache_dir=unit.cache_dir, device=unit.device)
        mean = ZeroLine.fit(data)
        queries = {}
        for split in (s for s in todo if SPLIT_FIT[s] == fit):
            view = split_view(bench, split, unit.trajectory, seed=unit.seed)
            queries[split] = view.query
            state.truth[split], state.queries[split] = view.truth, view.query
            try:
                state.reference[split] = mean.predict(view.query)
            except ValueError:  # runs of another length: no batch-blind reference, so no skill
                state.reference[split] = None
        tasks.append(FitTask(fit, data, queries))
    return Planned(done, state, MethodJob(unit.choice.spec, unit.choice.config, tuple(tasks)), replaced)


def validated(pred: object, shape: tuple[int, int, int], initial: np.ndarray) -> np.ndarray:
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


def without_skill(scores: dict[str, Score]) -> dict[str, Score]:
    """``scores`` with the skill undefined: a split whose runs have no batch-blind reference."""
    nan = float("nan")
    return {k: (Score(nan, nan, (nan, nan), 0) if k.startswith("skill_mse") else v) for k, v in scores.items()}


def in_sample_rescaled(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``pred`` with its change from the initial value scaled by the one factor that fits the
    split's true change best (least squares): the published TracIn-CP protocol, in-sample."""
    p, t = pred - pred[:, :, :1], truth - truth[:, :, :1]
    denom = float((p * p).sum())
    return pred[:, :, :1] + (float((p * t).sum()) / denom if denom > 0 else 0.0) * p


#: Test examples of the first evaluation run kept in every ok cell for the pages' plots.
N_SAMPLES = 3


def plot_samples(q: Any, pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """A few predicted and true trajectories of the split's first evaluation run, stored in the
    cell so that the pages' plots need neither predictions files nor benchmarks. The test
    examples are evenly spaced over the sorted ids: the same in every method's cell, not chosen."""
    ids = np.asarray(q.test.ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    picks = order[np.unique(np.linspace(0, len(ids) - 1, min(N_SAMPLES, len(ids))).round().astype(int))]
    return {"run": str(q.runs.names[0]), "test_ids": ids[picks].tolist(), "steps": np.asarray(q.runs.steps).tolist(),
            "predicted": np.round(pred[0, picks], 6).tolist(), "true": np.round(truth[0, picks], 6).tolist()}


def finish_fit(state: UnitState, fitted: Fitted) -> list[CellResult]:
    """Score the predictions of one fit that came back and write its pending cells."""
    unit, bench = state.unit, state.bench
    cells = []
    for split in [s for s in state.todo if SPLIT_FIT[s] == fitted.fit]:
        cell = state.todo.pop(split)
        base = dataclasses.replace(cell, fit_s=round(fitted.seconds, 4), fit_info=fitted.info)
        sim = fitted.simulated.get(split)
        problem = fitted.error or (sim.error if sim is not None else "simulate: no prediction came back")
        if problem is not None or sim is None:
            cells.append(_finish(unit, dataclasses.replace(base, status="failed", error=problem)))
            continue
        q, truth, ref = state.queries[split], state.truth[split], state.reference[split]
        try:
            pred = validated(sim.prediction, q.shape, q.initial)
            if fitted.info.get("in_sample_scale"):
                pred = in_sample_rescaled(pred, truth)
                base = dataclasses.replace(base, in_sample=True)
            names, rows = group_rows(bench, q.test.ids)
            scores, by_group = score_groups(pred, truth, pred if ref is None else ref, rows, group_names=names)
            if ref is None:
                scores, by_group = without_skill(scores), {g: without_skill(sc) for g, sc in by_group.items()}
        except (ValueError, OverflowingPrediction) as exc:
            cells.append(_finish(unit, dataclasses.replace(base, status="failed", error=f"simulate: {exc}")))
            continue
        done = dataclasses.replace(
            base, scores=scores, group_scores=by_group, reference=headroom(truth, ref) if ref is not None else {}, simulate_s=round(sim.seconds, 4),
            peak_mem_mb=round(max(fitted.peak_mb, sim.peak_mb), 1), n_runs=int(truth.shape[0]), n_test=int(truth.shape[1]),
        )
        done = dataclasses.replace(done, samples=plot_samples(q, pred, truth))
        extra = {"runs": np.array(q.runs.names), "test_ids": q.test.ids, "steps": q.runs.steps}
        cells.append(_finish(unit, done, pred, extra))
    return cells


def finish_unit(state: UnitState, error: str | None) -> list[CellResult]:
    """The end of a unit's job: cells still pending fail with ``error`` (its worker was lost,
    timed out, or returned no result for them); every lock is released."""
    try:
        return [_finish(state.unit, dataclasses.replace(cell, status="failed", error=error or "the worker returned no result for this fit"))
                for cell in state.todo.values()]
    finally:
        state.todo.clear()
        state.release()
