"""What each party may see: the fit data of a method, and the queries of each split.

This is where a run reads evaluation trajectories (the leaderboard reads them again, for its
plots only). A simulator gets their initial values alone (in a :class:`Query`, inside a worker
process) and only the fit and validation runs' checkpoints; the truth stays with the runner,
which scores.

Two fits serve the four splits, as in the published protocol: the ``all-test`` fit sees every
test example and serves ``seen`` and ``unseen-train``; the ``withheld-test`` fit withholds the
held-out test examples and serves ``unseen-test`` and ``unseen-both``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from tdabench.data import SPLITS, Benchmark, ModelAccess, SplitSpec
from tdabench.errors import UnknownNameError
from tdabench.simulator import Capabilities, FitData, Query, RunBatches

FIT_ALL, FIT_WITHHELD = "all-test", "withheld-test"
#: Which fit serves each split.
SPLIT_FIT: dict[str, str] = {"seen": FIT_ALL, "unseen-train": FIT_ALL, "unseen-test": FIT_WITHHELD, "unseen-both": FIT_WITHHELD}


@dataclass(frozen=True)
class SplitView:
    """One split's query and its truth (the truth never reaches the simulator).

    ``runs`` are the evaluation runs' real names, in the query's order; the query itself names
    them opaquely (``query-0``, ...), so a method cannot find their files by name.
    """

    query: Query
    truth: np.ndarray  # [R, n, K]
    runs: tuple[str, ...] = ()


def opaque(batches: RunBatches) -> RunBatches:
    """``batches`` with the runs named ``query-0``, ``query-1``, ... and numbered seeds: what a
    method needs to predict them (batches, learning rates, steps), and nothing that names their files."""
    n = len(batches.names)
    return dataclasses.replace(batches, names=tuple(f"query-{i}" for i in range(n)), seeds=np.arange(n, dtype=np.int64))


def check_split_name(name: str) -> str:
    """``name`` if it is a split, else an error with a "did you mean"."""
    if name not in SPLITS:
        raise UnknownNameError("split", name, list(SPLITS))
    return name


def run_batches(bench: Benchmark, names: tuple[str, ...], trajectory: str) -> RunBatches:
    """The inputs of the named runs: batches, learning rates and the trajectory's recorded steps."""
    runs = [bench.run(n) for n in names]
    steps = (runs[0] if runs else bench.runs[0]).trajectories[trajectory].steps
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


def values(bench: Benchmark, names: tuple[str, ...], trajectory: str, test_ids: np.ndarray) -> np.ndarray:
    """float64 [R, n, K]: the named runs' trajectories for ``test_ids``."""
    if not names:
        return np.zeros((0, len(test_ids), len(bench.runs[0].trajectories[trajectory].steps)))
    runs = [bench.run(n) for n in names]
    return np.stack([r.trajectories[trajectory].values[bench.rows(r, test_ids)] for r in runs])


def fit_test_ids(bench: Benchmark, fit: str) -> np.ndarray:
    """The test ids a fit sees: all of them, or all but the withheld ones."""
    if fit == FIT_ALL:
        return bench.test.ids
    return np.setdiff1d(bench.test.ids, np.asarray(bench.split.heldout_test_ids, dtype=np.int64))


def fit_model_access(bench: Benchmark, split: SplitSpec) -> ModelAccess | None:
    """The benchmark's model with the checkpoints of its fit and validation runs only: an
    evaluation run's weights would reproduce its trajectories, which no simulator may see."""
    if bench.model is None:
        return None
    allowed = set(split.fit_runs) | set(split.validation_runs)
    return dataclasses.replace(bench.model, checkpoints={r: c for r, c in bench.model.checkpoints.items() if r in allowed})


def fit_data(bench: Benchmark, trajectory: str, *, fit: str = FIT_ALL, seed: int, with_model: bool, cache_dir: str | None,
             device: str) -> FitData:
    """The fit runs and validation runs, on the test examples of ``fit``."""
    split = bench.split
    tests = fit_test_ids(bench, fit)
    fit_runs = run_batches(bench, split.fit_runs, trajectory)
    val_runs = run_batches(bench, split.validation_runs, trajectory)
    used = np.unique(np.concatenate([fit_runs.batches.ravel(), val_runs.batches.ravel()]))
    used = used[used >= 0]
    return FitData(
        trajectory=trajectory,
        runs=fit_runs,
        values=values(bench, split.fit_runs, trajectory, tests),
        validation=val_runs,
        validation_values=values(bench, split.validation_runs, trajectory, tests),
        train=bench.train.subset(used),
        test=bench.test.subset(tests),
        meta=bench.meta,
        seed=seed,
        model=fit_model_access(bench, split) if with_model else None,
        cache_dir=cache_dir,
        device=device,
    )


def split_parts(bench: Benchmark, split: str) -> tuple[tuple[str, ...], np.ndarray]:
    """(evaluation run names, test ids) of a split."""
    heldout = np.asarray(bench.split.heldout_test_ids, dtype=np.int64)
    unseen = bench.split.unseen_train_runs
    covered = bench.test.ids  # unseen-train runs may be recorded on a subset of the test ids
    for name in unseen:
        own = bench.run(name).test_ids
        if own is not None:
            covered = np.intersect1d(covered, own)
    return {
        "seen": (bench.split.eval_runs, bench.test.ids),
        "unseen-test": (bench.split.eval_runs, heldout),
        "unseen-train": (unseen, covered),
        "unseen-both": (unseen, np.intersect1d(heldout, covered)),
    }[check_split_name(split)]


def not_applicable(bench: Benchmark, split: str, trajectory: str, caps: Capabilities) -> str | None:
    """Why a method with ``caps`` cannot be scored on this cell, or None if it can."""
    if trajectory not in bench.trajectories:
        return f"the benchmark records no {trajectory!r} trajectories"
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
    if trajectory != "loss" and not caps.text_trajectories:
        return f"the method handles loss trajectories only, not {trajectory}"
    if not caps.any_length and bench.run(runs[0]).n_steps != bench.run(bench.split.fit_runs[0]).n_steps:
        return "the method predicts only runs as long as the fit runs (these runs have another length)"
    if caps.needs_checkpoints and bench.model is None:
        return "the benchmark has no model checkpoints"
    if caps.needs_text and not (bench.train.has_text and bench.test.has_text):
        return "the benchmark ships no example texts"
    return None


def split_view(bench: Benchmark, split: str, trajectory: str, *, seed: int) -> SplitView:
    """The query of a split (initial values only) and its truth."""
    names, tests = split_parts(bench, split)
    truth = values(bench, names, trajectory, tests)
    query = Query(
        trajectory=trajectory,
        runs=opaque(run_batches(bench, names, trajectory)),
        test=bench.test.subset(tests),
        initial=truth[:, :, 0].copy(),
        train=bench.train,
        seed=seed,
    )
    return SplitView(query, truth, tuple(names))


def group_rows(bench: Benchmark, test_ids: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """(group names, rows of ``test_ids`` in each group) of a benchmark scored per group."""
    names, rows = [], []
    ids = np.asarray(test_ids, dtype=np.int64)
    for name, members in bench.test_groups.items():
        r = np.flatnonzero(np.isin(ids, np.asarray(members, dtype=np.int64)))
        if len(r):
            names.append(name)
            rows.append(r)
    return names, rows
