"""The cluster datamodel: it finds planted kinds of examples, learns their effect, and stays honest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tdabench.run.context import Context
from tdabench.data import Benchmark, BenchmarkMeta, ExampleSet, Run, SplitSpec, Trajectory
from tdabench.methods.zero_line import ZeroLine as MeanChange
from tdabench.scoring import score
from tdabench.run.views import fit_data, split_view
from tdabench_plugins.datamodel import ClusterDatamodel, ClusterDatamodelConfig
from tdabench_plugins.datamodel._solve import cumulative_counts, kmeans

KINDS = {
    "review": ("Review: the film was {} and the acting {}. Sentiment:", " positive"),
    "triples": ("Triples: <{}> <capital> <{}> ; <{}> <river> <Danube>. Text:", " A long sentence about a city, its capital and its river."),
}


def _examples(ids: np.ndarray, kind_of: dict[int, str]) -> ExampleSet:
    prompts, targets = [], []
    for i in ids:
        tmpl, target = KINDS[kind_of[int(i)]]
        prompts.append(tmpl.format(f"w{i}", f"v{i}", f"u{i}"))
        targets.append(target)
    return ExampleSet(ids, tuple(prompts), tuple(targets), tuple(p + t for p, t in zip(prompts, targets)))


def planted(n_runs: int = 30, n_test: int = 12, T: int = 24, batch: int = 4, noise: float = 0.0, seed: int = 0) -> tuple[Benchmark, dict[int, str]]:
    """Runs that draw their mix of two kinds of examples from Beta(0.7, 0.7); a test example's loss
    moves by ``w_z log(1 + examples of kind review so far)`` on top of a shared curve."""
    rng = np.random.default_rng(seed)
    ids = np.arange(60, dtype=np.int64)
    kind_of = {int(i): ("review" if i % 2 == 0 else "triples") for i in ids}
    reviews, triples = ids[ids % 2 == 0], ids[ids % 2 == 1]
    test_ids = np.arange(1000, 1000 + n_test, dtype=np.int64)
    w = rng.normal(0.0, 0.3, size=n_test)
    base = -0.02 * np.arange(T + 1)
    runs = []
    for r in range(n_runs):
        share = rng.beta(0.7, 0.7)
        n_rev = int(round(share * T * batch))
        pool = np.concatenate([rng.choice(reviews, n_rev), rng.choice(triples, T * batch - n_rev)])
        batches = rng.permutation(pool).reshape(T, batch)
        cum = np.concatenate([[0], np.cumsum((batches % 2 == 0).sum(axis=1))])
        y = 2.0 + base[None, :] + w[:, None] * np.log1p(cum)[None, :] + rng.normal(0, noise, size=(n_test, T + 1))
        steps = np.arange(T + 1)
        runs.append(Run(f"run-{r}", r, batches, np.full(T, 1e-3), {"loss": Trajectory(steps, y)}, {"seed": str(r)}, np.full(T, np.nan)))
    names = [r.name for r in runs]
    split = SplitSpec(fit_runs=tuple(names[:20]), validation_runs=tuple(names[20:22]), eval_runs=tuple(names[22:]),
                      unseen_train_runs=(), heldout_test_ids=(), rule="test: by index")
    meta = BenchmarkMeta(model="synthetic", task="kinds", setting="ft", loss_type="last-token", trajectories=("loss",),
                         source="synthetic", description="planted effect of a kind of example")
    train = _examples(np.arange(80, dtype=np.int64), {**kind_of, **{int(i): ("review" if i % 2 == 0 else "triples") for i in range(60, 80)}})
    return Benchmark("synthetic/ft/kinds", meta, train, _examples(test_ids, {int(i): "review" for i in test_ids}), tuple(runs), split), kind_of


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Benchmark, ClusterDatamodel]:
    bench, _ = planted()
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=str(tmp_path_factory.mktemp("emb")), device="cpu")
    return bench, ClusterDatamodel(ClusterDatamodelConfig()).fit(data)


def test_finds_the_planted_kinds_and_predicts_new_runs_from_their_batches(fitted: tuple[Benchmark, ClusterDatamodel]) -> None:
    bench, model = fitted
    # the chosen clustering separates the two kinds exactly (maybe splitting them further)
    kinds = model.train_ids_ % 2
    assert all(len(set(kinds[model.labels_ == c])) == 1 for c in range(model.k_))
    view = split_view(bench, "seen", "loss", seed=0)
    ref = MeanChange.fit(fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")).predict(view.query)
    skill = score(model.simulate(view.query), view.truth, ref)["skill_mse"].mean
    assert skill > 0.9, skill


def test_a_training_example_it_never_saw_joins_the_cluster_of_its_kind(fitted: tuple[Benchmark, ClusterDatamodel]) -> None:
    bench, model = fitted
    view = split_view(bench, "seen", "loss", seed=0)
    # swap every id of the evaluation runs for an unseen example of the same kind (ids 60-79)
    batches = view.query.runs.batches
    swapped = np.where(batches >= 0, 60 + batches % 20, -1)
    q = dataclasses.replace(view.query, runs=dataclasses.replace(view.query.runs, batches=swapped))
    np.testing.assert_allclose(model.simulate(q), model.simulate(view.query), rtol=0, atol=1e-12)


def test_a_test_example_it_never_saw_borrows_its_nearest_fitted_ones(tmp_path: Path) -> None:
    bench, _ = planted()
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=str(tmp_path), device="cpu")
    model = ClusterDatamodel(ClusterDatamodelConfig(neighbors=1)).fit(data)
    q = split_view(bench, "seen", "loss", seed=0).query
    # a copy of every fitted test example under a new id: its one nearest neighbour is itself
    t = bench.test
    copies = ExampleSet(t.ids + 5000, t.prompts, t.targets, t.texts)
    np.testing.assert_allclose(model.simulate(dataclasses.replace(q, test=copies)), model.simulate(q), rtol=0, atol=1e-12)


def test_rejects_runs_of_other_recorded_steps(fitted: tuple[Benchmark, ClusterDatamodel]) -> None:
    bench, model = fitted
    q = split_view(bench, "seen", "loss", seed=0).query
    short = dataclasses.replace(q.runs, steps=q.runs.steps[:-1])
    with pytest.raises(ValueError, match="recorded steps"):
        model.simulate(dataclasses.replace(q, runs=short))


def test_without_signal_it_is_the_mean_trajectory_or_close(tmp_path: Path) -> None:
    bench, _ = planted(noise=0.05)
    # destroy the link between batches and values: every run's values come from another run
    runs = list(bench.runs)
    values = [r.trajectories["loss"] for r in runs]
    shuffled = tuple(dataclasses.replace(r, trajectories={"loss": values[(j + 7) % len(runs)]}) for j, r in enumerate(runs))
    bench = dataclasses.replace(bench, runs=shuffled)
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=str(tmp_path), device="cpu")
    model = ClusterDatamodel(ClusterDatamodelConfig()).fit(data)
    view = split_view(bench, "seen", "loss", seed=0)
    ref = MeanChange.fit(data).predict(view.query)
    assert score(model.simulate(view.query), view.truth, ref)["skill_mse"].mean > -0.1


def test_cumulative_counts_and_kmeans_by_hand() -> None:
    from tdabench.simulator import RunBatches

    runs = RunBatches(("r",), np.array([0]), np.array([[[3, 5], [5, -1], [9, 3]]]), np.full((1, 3), 1e-3), np.array([0, 2, 3]))
    x = cumulative_counts(runs, np.array([3, 5, 9]), np.array([0, 1, 1]), 2)
    np.testing.assert_array_equal(x[0], [[0, 0], [1, 2], [2, 3]])
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    labels, centers = kmeans(pts, 2, seed=0)
    assert labels[0] == labels[1] != labels[2] == labels[3]


def test_registered_with_honest_capabilities_and_options_are_validated() -> None:
    spec = Context.create(progress=False).registry.method("cluster-datamodel")
    caps = spec.capabilities
    assert (caps.unseen_test, caps.unseen_train, caps.any_length, caps.needs_text, caps.self_influence) == (True, True, False, True, False)
    with pytest.raises(Exception, match="counts"):
        spec.make_config({"counts": "sqrt"})
