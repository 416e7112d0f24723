"""Standard splits: which runs fit, validate and evaluate, and which test examples are withheld.

The rule (docs/benchmarks.md) is deterministic and depends only on run seeds, run names,
training ids and test ids:

1. Runs whose training examples overlap (transitively) with those of the lowest-seed run form
   the main pool; any other run holds only unseen training examples and evaluates
   ``unseen-train``.
2. Main-pool runs are sorted by (seed, name). The last ``n_eval`` evaluate, the ``n_val``
   before them validate, the rest fit. With 32 runs that is the published 25 / 2 / 5.
3. ``HELDOUT_FRACTION`` of the test ids, drawn by a fixed-seed permutation, are withheld from
   fitting for ``unseen-test``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tdabench.data import Run, SplitSpec
from tdabench.errors import TDABenchError

HELDOUT_FRACTION = 0.2
HELDOUT_SEED = 2404_07840  # the GPTfluence arXiv number: fixed, documented, arbitrary


def split_counts(n_runs: int) -> tuple[int, int, int]:
    """(fit, validation, evaluation) run counts; 32 runs give the published (25, 2, 5)."""
    if n_runs < 2:
        return n_runs, 0, 0  # loadable (a single run dir), but nothing to evaluate on
    n_eval = min(5, max(1, round(n_runs * 5 / 32)))
    n_val = 0 if n_runs < 4 else min(2, max(1, round(n_runs * 2 / 32)))
    return n_runs - n_eval - n_val, n_val, n_eval


def main_pool(runs: Sequence[Run]) -> list[Run]:
    """The runs connected to the lowest-seed run by shared training examples."""
    order = sorted(runs, key=lambda r: (r.seed, r.name))
    ids = [set(r.train_ids().tolist()) for r in order]
    pool = set(ids[0])
    members = {0}
    grew = True
    while grew:  # transitive closure; runs are few
        grew = False
        for i, s in enumerate(ids):
            if i not in members and s & pool:
                members.add(i)
                pool |= s
                grew = True
    return [r for i, r in enumerate(order) if i in members]


def heldout_test_ids(test_ids: np.ndarray, fraction: float = HELDOUT_FRACTION) -> np.ndarray:
    """The withheld test ids: a fixed-seed draw of ``fraction`` of them, sorted."""
    test_ids = np.sort(np.asarray(test_ids, dtype=np.int64))
    n = int(round(len(test_ids) * fraction)) if len(test_ids) >= 5 else 0
    perm = np.random.default_rng(HELDOUT_SEED).permutation(len(test_ids))
    return np.sort(test_ids[perm[:n]])


def default_split(runs: Sequence[Run], test_ids: np.ndarray) -> SplitSpec:
    """The standard split of a benchmark that ships none (a GPTDynamics copy)."""
    main = main_pool(runs)
    n_fit, n_val, n_eval = split_counts(len(main))
    main_names = {r.name for r in main}
    unseen = sorted((r for r in runs if r.name not in main_names), key=lambda r: (r.seed, r.name))
    return SplitSpec(
        fit_runs=tuple(r.name for r in main[:n_fit]),
        validation_runs=tuple(r.name for r in main[n_fit : n_fit + n_val]),
        eval_runs=tuple(r.name for r in main[n_fit + n_val :]),
        unseen_train_runs=tuple(r.name for r in unseen),
        heldout_test_ids=tuple(int(i) for i in heldout_test_ids(test_ids)),
        rule=(
            f"default: runs by seed, {n_fit} fit / {n_val} validation / {n_eval} evaluation; "
            f"{len(unseen)} runs on a disjoint training pool for unseen-train; "
            f"{HELDOUT_FRACTION:.0%} of test ids withheld (seed {HELDOUT_SEED})"
        ),
    )


def check_split(split: SplitSpec, runs: Sequence[Run], test_ids: np.ndarray, where: str) -> None:
    """A manifest's split must name existing runs, once each, and existing test ids."""
    names = {r.name for r in runs}
    groups = (split.fit_runs, split.validation_runs, split.eval_runs, split.unseen_train_runs)
    listed = [n for g in groups for n in g]
    for n in listed:
        if n not in names:
            raise TDABenchError(f"{where}: split names run {n!r}, which is not in the benchmark")
    if len(set(listed)) != len(listed):
        raise TDABenchError(f"{where}: split lists a run in more than one group")
    if not split.fit_runs:
        raise TDABenchError(f"{where}: split needs at least one fit run")
    bad = np.setdiff1d(np.asarray(split.heldout_test_ids, dtype=np.int64), test_ids)
    if len(bad):
        raise TDABenchError(f"{where}: split withholds test id {int(bad[0])}, which is not in the benchmark")
