"""What each party may see: the fit data of a method, and the queries of each split.

This is the only place where evaluation trajectories are read, and it hands a simulator
their initial values alone; the truth goes to the scorer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdabench.data import SPLITS, Benchmark
from tdabench.errors import UnknownNameError
from tdabench.simulator import Capabilities, FitData, Query, RunBatches


@dataclass(frozen=True)
class SplitView:
    """One split's query and its truth (the truth never reaches the simulator)."""

    query: Query
    truth: np.ndarray  # [R, n, K]


def check_split_name(name: str) -> str:
    """``name`` if it is a split, else an error with a "did you mean"."""
    if name not in SPLITS:
        raise UnknownNameError("split", name, list(SPLITS))
    return name


def run_batches(bench: Benchmark, names: tuple[str, ...], metric: str) -> RunBatches:
    """The inputs of the named runs: batches, learning rates and the metric's recorded steps."""
    runs = [bench.run(n) for n in names]
    steps = bench.runs[0].trajectories[metric].steps
    if not runs:
        T = bench.runs[0].n_steps
        return RunBatches((), np.zeros(0, np.int64), np.zeros((0, T, 1), np.int64), np.zeros((0, T)), steps)
    width = max(r.batches.shape[1] for r in runs)
    batches = np.full((len(runs), runs[0].n_steps, width), -1, dtype=np.int64)
    for i, r in enumerate(runs):
        batches[i, :, : r.batches.shape[1]] = r.batches
    batches.setflags(write=False)
    return RunBatches(
        names=tuple(names),
        seeds=np.array([r.seed for r in runs], dtype=np.int64),
        batches=batches,
        lr=np.stack([r.lr for r in runs]),
        steps=steps,
    )


def values(bench: Benchmark, names: tuple[str, ...], metric: str, test_ids: np.ndarray) -> np.ndarray:
    """float64 [R, n, K]: the named runs' trajectories of ``metric`` for ``test_ids``."""
    rows = bench.test.positions(test_ids)
    K = len(bench.runs[0].trajectories[metric].steps)
    if not names:
        return np.zeros((0, len(rows), K))
    return np.stack([bench.run(n).trajectories[metric].values[rows] for n in names])


def seen_test_ids(bench: Benchmark) -> np.ndarray:
    """Test ids used in fitting: all but the withheld ones."""
    return np.setdiff1d(bench.test.ids, np.asarray(bench.split.heldout_test_ids, dtype=np.int64))


def fit_data(bench: Benchmark, metric: str, *, seed: int, with_model: bool, cache_dir: str | None, device: str) -> FitData:
    """The fit runs and validation runs, on the seen test examples only."""
    split = bench.split
    seen = seen_test_ids(bench)
    fit_runs = run_batches(bench, split.fit_runs, metric)
    val_runs = run_batches(bench, split.validation_runs, metric)
    used = np.unique(np.concatenate([fit_runs.batches.ravel(), val_runs.batches.ravel()]))
    used = used[used >= 0]
    return FitData(
        metric=metric,
        runs=fit_runs,
        values=values(bench, split.fit_runs, metric, seen),
        validation=val_runs,
        validation_values=values(bench, split.validation_runs, metric, seen),
        train=bench.train.subset(used),
        test=bench.test.subset(seen),
        meta=bench.meta,
        seed=seed,
        model=bench.model if with_model else None,
        cache_dir=cache_dir,
        device=device,
    )


def split_parts(bench: Benchmark, split: str) -> tuple[tuple[str, ...], np.ndarray]:
    """(evaluation run names, test ids) of a split."""
    seen = seen_test_ids(bench)
    heldout = np.asarray(bench.split.heldout_test_ids, dtype=np.int64)
    return {
        "seen": (bench.split.eval_runs, seen),
        "unseen-test": (bench.split.eval_runs, heldout),
        "unseen-train": (bench.split.unseen_train_runs, seen),
        "unseen-both": (bench.split.unseen_train_runs, heldout),
    }[check_split_name(split)]


def not_applicable(bench: Benchmark, split: str, metric: str, caps: Capabilities) -> str | None:
    """Why a method with ``caps`` cannot be scored on this cell, or None if it can."""
    runs, tests = split_parts(bench, split)
    if not runs:
        if split in ("seen", "unseen-test"):
            return "the benchmark has no evaluation runs (it needs at least 2 runs)"
        return "the benchmark has no evaluation runs on unseen training examples"
    if len(tests) == 0:
        return "the benchmark withholds no test examples"
    if split in ("unseen-test", "unseen-both") and not caps.unseen_test:
        return "the method cannot predict test examples it was not fitted on"
    if split in ("unseen-train", "unseen-both") and not caps.unseen_train:
        return "the method cannot use training examples it was not fitted on"
    if metric != "loss" and not caps.metric_trajectories:
        return f"the method handles loss trajectories only, not {metric}"
    if caps.needs_checkpoints and bench.model is None:
        return "the benchmark has no model checkpoints"
    if caps.needs_text and not (bench.train.has_text and bench.test.has_text):
        return "the benchmark ships no example texts"
    return None


def split_view(bench: Benchmark, split: str, metric: str, *, seed: int) -> SplitView:
    """The query of a split (initial values only) and its truth."""
    names, tests = split_parts(bench, split)
    truth = values(bench, names, metric, tests)
    query = Query(
        metric=metric,
        runs=run_batches(bench, names, metric),
        test=bench.test.subset(tests),
        initial=truth[:, :, 0].copy(),
        train=bench.train,
        seed=seed,
    )
    return SplitView(query, truth)
