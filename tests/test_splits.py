"""The standard splits."""

from __future__ import annotations

import numpy as np

from tdabench.data import Run, Trajectory
from tdabench.sources.splits import default_split, heldout_test_ids, split_counts


def _run(seed: int, ids: np.ndarray) -> Run:
    batches = ids.reshape(-1, 2)
    return Run(f"r{seed}", seed, batches, np.zeros(len(batches)), {"loss": Trajectory(np.arange(1, len(batches) + 1), np.zeros((1, len(batches))))})


def test_published_counts() -> None:
    assert split_counts(32) == (25, 2, 5)
    assert split_counts(2) == (1, 0, 1)
    assert sum(split_counts(10)) == 10


def test_default_split_is_deterministic_and_finds_disjoint_pool() -> None:
    rng = np.random.default_rng(0)
    main = [_run(s, rng.choice(20, 8, replace=False)) for s in range(32)]
    ood = [_run(100 + s, 1200 + rng.choice(20, 8, replace=False)) for s in range(3)]
    runs = ood + main[::-1]  # input order must not matter
    test_ids = np.arange(50)
    split = default_split(runs, test_ids)
    assert split == default_split(list(reversed(runs)), test_ids)
    assert split.fit_runs == tuple(f"r{s}" for s in range(25))
    assert split.validation_runs == ("r25", "r26")
    assert split.eval_runs == tuple(f"r{s}" for s in range(27, 32))
    assert split.unseen_train_runs == ("r100", "r101", "r102")
    assert len(split.heldout_test_ids) == 10
    assert split.heldout_test_ids == tuple(heldout_test_ids(test_ids))


def test_heldout_ids_do_not_depend_on_order() -> None:
    ids = np.arange(100, 300)
    np.testing.assert_array_equal(heldout_test_ids(ids), heldout_test_ids(ids[::-1]))
    assert len(heldout_test_ids(np.arange(3))) == 0
