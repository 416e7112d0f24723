"""The example plugin's own tests: tdabench's conformance suite in one line, plus a sanity check."""

from __future__ import annotations

from tdabench.testing import conformance_test, make_case

test_knn_conformance = conformance_test("knn")


def test_knn_uses_the_batches() -> None:
    """On data from a known process, knn beats holding the initial value."""
    case = make_case("knn")
    q = case.query()
    truth = case.truth()
    pred = case.fit().simulate(q)
    held = q.initial[:, :, None]
    assert ((pred - truth) ** 2).mean() < ((held - truth) ** 2).mean()
