"""The data model and the inputs a simulator sees."""

from __future__ import annotations

import numpy as np
import pytest

from tdabench.data import ExampleSet
from tdabench.simulator import RunBatches


def test_example_set_sorts_and_maps_ids() -> None:
    ex = ExampleSet(np.array([5, 1, 9]), ("p5", "p1", "p9"), ("t5", "t1", "t9"), ("p5t5", "p1t1", "p9t9"))
    assert ex.ids.tolist() == [1, 5, 9] and ex.prompts == ("p1", "p5", "p9")
    np.testing.assert_array_equal(ex.positions(np.array([[9, -1], [4, 1]])), [[2, -1], [-1, 0]])
    sub = ex.subset(np.array([9, 5]))
    assert sub.ids.tolist() == [5, 9] and sub.texts == ("p5t5", "p9t9")
    with pytest.raises(KeyError):
        ex.subset(np.array([2]))
    with pytest.raises(ValueError, match="unique"):
        ExampleSet(np.array([1, 1]), ("a", "b"), ("", ""), ("a", "b"))


def test_transitions_one_value_per_step() -> None:
    batches = np.arange(24).reshape(1, 6, 4)  # one run, 6 steps of 4
    rb = RunBatches(("r",), np.array([0]), batches, np.full((1, 6), 0.1), np.arange(1, 7))
    tr = rb.transitions()
    assert tr.shape == (1, 5, 4)
    np.testing.assert_array_equal(tr[0, 0], batches[0, 1])  # step 1 -> 2 uses step 2's batch
    np.testing.assert_allclose(rb.transition_lr(), 0.1)


def test_transitions_spanning_several_steps() -> None:
    batches = np.arange(12).reshape(1, 6, 2)
    rb = RunBatches(("r",), np.array([0]), batches, np.arange(6.0)[None], np.array([0, 2, 3, 6]))
    tr = rb.transitions()
    assert tr.shape == (1, 3, 6)
    np.testing.assert_array_equal(tr[0, 0], [0, 1, 2, 3, -1, -1])  # steps 1, 2
    np.testing.assert_array_equal(tr[0, 1], [4, 5, -1, -1, -1, -1])  # step 3
    np.testing.assert_array_equal(tr[0, 2], [6, 7, 8, 9, 10, 11])  # steps 4..6
    np.testing.assert_allclose(rb.transition_lr()[0], [0 + 1, 2, 3 + 4 + 5])
