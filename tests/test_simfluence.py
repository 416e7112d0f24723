"""Simfluence-Linear and its additive and multiplicative variants (plugins/tdabench_plugins/simfluence*.py)."""

from __future__ import annotations

import dataclasses
import json
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from tdabench.cli import main
from tdabench.data import Benchmark, BenchmarkMeta, ExampleSet, Trajectory
from tdabench.errors import ConfigError
from tdabench.formats.gptdynamics_write import write_benchmark
from tdabench.results.record import read_results
from tdabench.simulator import FitData, Query, RunBatches
from tdabench.sources.synthetic import SyntheticTruth, simfluence_benchmark
from tdabench.run.views import fit_data, split_view
from tdabench_plugins import simfluence as sf
from tdabench_plugins.simfluence._rollout import factor_sums, query_transitions, rollout, rollout_mse

VARIANTS = {"linear": sf.SimfluenceLinear, "additive": sf.SimfluenceAdditive, "multiplicative": sf.SimfluenceMultiplicative}


# -- helpers ------------------------------------------------------------------------------
def _fit(bench: Benchmark, metric: str = "loss", fit: str = "all-test") -> FitData:
    return fit_data(bench, metric, fit=fit, seed=0, with_model=False, cache_dir=None, device="cpu")


def _batches(ids: np.ndarray, steps: np.ndarray) -> RunBatches:
    R, T = ids.shape[:2]
    return RunBatches(tuple(f"r{i}" for i in range(R)), np.arange(R), ids, np.full((R, T), 1e-4), steps)


def _tiny(seed: int = 0) -> tuple[FitData, np.ndarray]:
    """A small hand-made problem: sparse ids, padding, transitions spanning 1 to 3 steps, NaNs.

    Returns the FitData and the training ids of an extra query pool (unseen ids mixed in).
    """
    rng = np.random.default_rng(seed)
    train_ids = np.array([3, 7, 10, 11, 20, 42, 50])  # 50 occurs in the validation runs only
    test_ids = np.array([100, 105, 111])
    steps = np.array([1, 3, 4, 6, 9])  # recorded steps: transitions of 2, 1, 2 and 3 steps
    T, Bsz = 9, 2

    def runs(n: int, pool: np.ndarray) -> tuple[RunBatches, np.ndarray]:
        ids = rng.choice(pool, size=(n, T, Bsz))
        ids[0, 4, 1] = -1  # a short batch (padding)
        vals = rng.uniform(1.0, 3.0, size=(n, len(test_ids), len(steps)))
        return _batches(ids, steps), vals

    fit_runs, fit_vals = runs(6, train_ids[:6])
    fit_vals[1, 2, 3] = np.nan  # a missing value masks the two transitions that touch it
    val_runs, val_vals = runs(2, train_ids)
    meta = BenchmarkMeta(model="m", task="t", setting="ft")
    data = FitData("loss", fit_runs, fit_vals, val_runs, val_vals, ExampleSet.from_ids(train_ids), ExampleSet.from_ids(test_ids), meta)
    return data, np.array([3, 7, 50, 999, 1000])


def _slow_fit(data: FitData, variant: str, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direct implementation from docs/methods.md: loops over transitions, one dense solve per z.

    Returns (observed train ids, A, B) with A/B None-free: A = 1/b for additive, B = 0 for multiplicative.
    """
    runs, vals = data.runs, data.values
    train = list(data.train.ids)
    n = len(train)
    rows = []  # (count vector, run, column)
    for r in range(len(runs)):
        for k in range(len(runs.steps) - 1):
            c = np.zeros(n)
            for t in range(runs.steps[k] + 1, runs.steps[k + 1] + 1):  # steps t, 1-based
                for i in runs.batches[r, t - 1]:
                    if i >= 0:
                        c[train.index(i)] += 1
            rows.append((c, r, k))
    sizes = [int(c.sum()) for c, _, _ in rows if c.sum() > 0]
    b = np.bincount(sizes).argmax()
    sq = sum(c * c for c, _, _ in rows)
    observed = sq > 0
    nbar = sq[observed].mean()
    A = np.full((n, vals.shape[1]), 1.0 / b)
    B = np.zeros((n, vals.shape[1]))
    a0 = 1.0 / b
    for z in range(vals.shape[1]):
        X, v = [], []
        for c, r, k in rows:
            x, u = vals[r, z, k], vals[r, z, k + 1]
            if not (np.isfinite(x) and np.isfinite(u)) or c.sum() == 0:
                continue
            if variant == "linear":
                X.append(np.concatenate([c * x, c]))
                v.append(u)
            elif variant == "multiplicative":
                X.append(c * x)
                v.append(u)
            else:
                X.append(c)
                v.append(u - x)
        X, v = np.array(X), np.array(v)
        s2 = np.mean([vals[r, z, k] ** 2 for c, r, k in rows if np.isfinite(vals[r, z, k]) and np.isfinite(vals[r, z, k + 1]) and c.sum() > 0])
        if variant == "linear":
            w = np.concatenate([np.full(n, nbar * s2), np.full(n, nbar)])
            th0 = np.concatenate([np.full(n, a0), np.zeros(n)])
        elif variant == "multiplicative":
            w, th0 = np.full(n, nbar * s2), np.full(n, a0)
        else:
            w, th0 = np.full(n, nbar), np.zeros(n)
        theta = np.linalg.solve(X.T @ X + lam * np.diag(w), X.T @ v + lam * w * th0)
        if variant == "linear":
            A[:, z], B[:, z] = theta[:n], theta[n:]
        elif variant == "multiplicative":
            A[:, z] = theta
        else:
            B[:, z] = theta
    return data.train.ids[observed], A[observed], B[observed]


def _slow_rollout(model: sf.SimfluenceBase, runs: RunBatches, initial: np.ndarray, variant: str) -> np.ndarray:
    """Loops over runs, transitions, test examples and ids; unseen ids get (1/b, 0)."""
    tr, te, A, B = model.factors()
    b = model.batch_size_
    R, n, K = len(runs), len(te), len(runs.steps)
    out = np.zeros((R, n, K))
    for r in range(R):
        for z in range(n):
            y = initial[r, z]
            out[r, z, 0] = y
            for k in range(K - 1):
                sa = sb = 0.0
                ids = [i for t in range(runs.steps[k] + 1, runs.steps[k + 1] + 1) for i in runs.batches[r, t - 1] if i >= 0]
                for i in ids:
                    if i in tr:
                        j = list(tr).index(i)
                        sa, sb = sa + A[j, z], sb + B[j, z]
                    else:
                        sa += 1.0 / b
                if variant == "additive" or not ids:
                    sa = 1.0
                y = sa * y + sb
                out[r, z, k + 1] = y
    return out


def _plugin_args() -> list[str]:
    """Load the plugin explicitly when the installed metadata predates its entry point."""
    names = {ep.name for ep in entry_points(group="tdabench")}
    return [] if "simfluence" in names else ["-p", "tdabench_plugins.simfluence"]


@pytest.fixture(scope="module")
def recovery() -> tuple[Benchmark, SyntheticTruth]:
    """Enough transitions per pair to identify A and B under noise."""
    return simfluence_benchmark(noise=0.002, epochs=8, seed=1)


# -- correctness against a direct implementation -----------------------------------------
@pytest.mark.parametrize("solver", ["direct", "cg"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fit_and_rollout_match_slow_reference(variant: str, solver: str) -> None:
    data, extra_ids = _tiny()
    cfg = sf.SimfluenceConfig(lambdas=(0.3,), solver=solver, clip=False, cg_tol=1e-12)
    model = VARIANTS[variant](cfg).fit(data)
    ids, A_ref, B_ref = _slow_fit(data, variant, 0.3)
    tr, te, A, B = model.factors()
    np.testing.assert_array_equal(tr, ids)  # id 50 (validation runs only) has no learned factors
    np.testing.assert_allclose(A, A_ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(B, B_ref, rtol=1e-7, atol=1e-9)
    # Query: the validation runs plus a run with ids never seen (999, 1000) and an empty step.
    rng = np.random.default_rng(5)
    qids = rng.choice(extra_ids, size=(3, 9, 2))
    qids[2, 5:7] = -1
    runs = _batches(qids, data.runs.steps)
    initial = rng.uniform(1, 3, size=(3, 3))
    q = Query("loss", runs, data.test, initial, ExampleSet.from_ids(np.r_[data.train.ids, 999, 1000]))
    pred = model.simulate(q)
    np.testing.assert_allclose(pred, _slow_rollout(model, runs, initial, variant), rtol=1e-10, atol=1e-12)
    assert pred.shape == q.shape and np.array_equal(pred[:, :, 0], initial)


def test_cg_and_direct_agree_on_a_larger_problem(recovery: tuple[Benchmark, SyntheticTruth]) -> None:
    data = _fit(recovery[0])
    out = {}
    for solver in ("direct", "cg"):
        m = sf.SimfluenceLinear(sf.SimfluenceConfig(lambdas=(1e-4,), solver=solver, cg_tol=1e-12)).fit(data)
        out[solver] = m.factors()
        assert m.solver_ == solver
    for a, b in zip(out["direct"][2:], out["cg"][2:]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8 * np.abs(a).max())


# -- recovery on a known process ----------------------------------------------------------
def test_recovers_factors_and_reaches_the_noise_floor(recovery: tuple[Benchmark, SyntheticTruth]) -> None:
    bench, truth = recovery
    data = _fit(bench)
    model = sf.SimfluenceLinear(sf.SimfluenceConfig()).fit(data)
    tr, te, A, B = model.factors()
    rows, cols = np.searchsorted(truth.train_ids, tr), np.searchsorted(truth.test_ids, te)
    assert np.corrcoef(A.ravel(), truth.A[np.ix_(rows, cols)].ravel())[0, 1] > 0.95
    assert np.corrcoef(B.ravel(), truth.B[np.ix_(rows, cols)].ravel())[0, 1] > 0.95
    view = split_view(bench, "seen", "loss", seed=0)
    mse = rollout_mse(model.simulate(view.query), view.truth)
    # The floor: the rollout of the true factors from the same initial values.
    qt = query_transitions(view.query.runs, truth.train_ids)
    tcols = np.searchsorted(truth.test_ids, view.query.test.ids)
    nz = len(tcols)
    SA, SB = factor_sums(qt, truth.A[:, tcols], truth.B[:, tcols], np.zeros(nz), np.zeros(nz))
    floor = rollout_mse(rollout(SA, SB, view.query.initial, None), view.truth)
    assert floor < mse < 1.5 * floor
    # The misspecified variants are worse than the true model's form.
    for variant in ("additive", "multiplicative"):
        other = VARIANTS[variant](sf.SimfluenceConfig()).fit(data)
        assert rollout_mse(other.simulate(view.query), view.truth) > mse


def test_scale_equivariance_for_text_trajectories(synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    """Multiplying the metric by 100 leaves A and lambda alone and multiplies B by 100."""
    data = _fit(synthetic[0])
    scaled = dataclasses.replace(data, trajectory="bleu", values=data.values * 100, validation_values=data.validation_values * 100)
    for cls in VARIANTS.values():
        a = cls(sf.SimfluenceConfig()).fit(data)
        b = cls(sf.SimfluenceConfig()).fit(scaled)
        assert a.lambda_ == b.lambda_
        np.testing.assert_allclose(b.factors()[2], a.factors()[2], rtol=1e-6)
        np.testing.assert_allclose(b.factors()[3], 100 * a.factors()[3], rtol=1e-6, atol=1e-9)


def test_bleu_metric_runs_and_beats_constant(synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    bench = synthetic[0]
    model = sf.SimfluenceLinear(sf.SimfluenceConfig()).fit(_fit(bench, "bleu"))
    view = split_view(bench, "seen", "bleu", seed=0)
    pred = model.simulate(view.query)
    assert np.isfinite(pred).all()
    const = np.repeat(view.query.initial[:, :, None], pred.shape[2], axis=2)
    assert rollout_mse(pred, view.truth) < 0.5 * rollout_mse(const, view.truth)


# -- lambda selection ---------------------------------------------------------------------
def test_lambda_is_the_validation_argmin(synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    bench = synthetic[0]
    data = _fit(bench)
    grid = (1e-4, 1e-2, 1.0)
    # The direct solver gives every lambda the same answer as a single-lambda fit (CG warm
    # starts from the previous lambda, which moves the solution within its tolerance).
    model = sf.SimfluenceLinear(sf.SimfluenceConfig(lambdas=grid, solver="direct")).fit(data)
    assert model.selected_on_ == "validation"
    q = Query("loss", data.validation, data.test, data.validation_values[:, :, 0], data.train)
    expected = {}
    for lam in grid:
        single = sf.SimfluenceLinear(sf.SimfluenceConfig(lambdas=(lam,), solver="direct")).fit(data)
        expected[lam] = rollout_mse(single.simulate(q), data.validation_values)
    assert model.lambda_scores_ == pytest.approx(expected, rel=1e-9)
    assert model.lambda_ == min(expected, key=expected.__getitem__)
    info = model.fit_info()
    assert info["lambda"] == model.lambda_ and info["lambda_selected_on"] == "validation"
    json.dumps(info)  # JSON-ready


def test_lambda_selection_never_reads_evaluation_runs(synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    bench = synthetic[0]
    hidden = set(bench.split.eval_runs) | set(bench.split.unseen_train_runs)
    runs = tuple(
        dataclasses.replace(r, trajectories={m: Trajectory(t.steps, np.full_like(t.values, 1e6)) for m, t in r.trajectories.items()})
        if r.name in hidden else r
        for r in bench.runs
    )
    corrupted = dataclasses.replace(bench, runs=runs)
    for cls in VARIANTS.values():
        a = cls(sf.SimfluenceConfig()).fit(_fit(bench))
        b = cls(sf.SimfluenceConfig()).fit(_fit(corrupted))
        assert a.lambda_ == b.lambda_ and a.lambda_scores_ == b.lambda_scores_
        for x, y in zip(a.factors(), b.factors()):
            np.testing.assert_array_equal(x, y)
    # Corrupting the validation runs instead does change what is selected on.
    val = set(bench.split.validation_runs)
    runs = tuple(
        dataclasses.replace(r, trajectories={m: Trajectory(t.steps, t.values[:, ::-1].copy()) for m, t in r.trajectories.items()})
        if r.name in val else r
        for r in bench.runs
    )
    c = sf.SimfluenceLinear(sf.SimfluenceConfig()).fit(_fit(dataclasses.replace(bench, runs=runs)))
    assert c.lambda_scores_ != a.lambda_scores_


def test_without_validation_runs_lambda_is_chosen_on_fit_runs(synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    data = _fit(synthetic[0])
    empty = dataclasses.replace(
        data,
        validation=RunBatches((), np.zeros(0, np.int64), np.zeros((0,) + data.runs.batches.shape[1:], np.int64), np.zeros((0, data.runs.lr.shape[1])), data.runs.steps),
        validation_values=np.zeros((0,) + data.values.shape[1:]),
    )
    model = sf.SimfluenceLinear(sf.SimfluenceConfig()).fit(empty)
    assert model.selected_on_ == "fit" and model.fit_info()["lambda_selected_on"] == "fit"
    assert np.isfinite(model.lambda_)


# -- unseen training examples -------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batch_of_unseen_examples_keeps_the_value(variant: str, synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    bench = synthetic[0]
    model = VARIANTS[variant](sf.SimfluenceConfig()).fit(_fit(bench))
    view = split_view(bench, "unseen-train", "loss", seed=0)  # pool B: never in the fit runs
    pred = model.simulate(view.query)
    np.testing.assert_allclose(pred, np.repeat(view.query.initial[:, :, None], pred.shape[2], axis=2), rtol=1e-12)
    # With unseen=mean they move like an average fitted example instead.
    mean = VARIANTS[variant](sf.SimfluenceConfig(unseen="mean")).fit(_fit(bench))
    moved = mean.simulate(view.query)
    assert not np.allclose(moved, pred)
    assert rollout_mse(moved, view.truth) < rollout_mse(pred, view.truth)


def test_rejects_unfitted_test_examples(synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    bench = synthetic[0]
    model = sf.SimfluenceLinear(sf.SimfluenceConfig()).fit(_fit(bench, fit="withheld-test"))
    view = split_view(bench, "unseen-test", "loss", seed=0)
    with pytest.raises(ValueError, match="not fitted on"):
        model.simulate(view.query)


# -- factors and attribution --------------------------------------------------------------
def test_factors_attribution_and_self_influence() -> None:
    # Test examples that are also training examples, as in mislabel detection.
    bench, truth = simfluence_benchmark(n_train=20, n_test=10, sample=12, epochs=6, noise=0.001, seed=3)
    data = _fit(bench)
    data = dataclasses.replace(
        data, test=ExampleSet.from_ids(np.array([2, 5, 300])),
        values=data.values[:, :3], validation_values=data.validation_values[:, :3],
    )
    model = sf.SimfluenceLinear(sf.SimfluenceConfig()).fit(data)
    tr, te, A, B = model.factors()
    assert A.shape == B.shape == (len(tr), 3) and np.array_equal(te, [2, 5, 300])
    att = model.attribution()
    np.testing.assert_allclose(att, (A - 1 / model.batch_size_) * model.level_[None, :] + B)
    np.testing.assert_allclose(model.attribution(2.0), (A - 0.25) * 2.0 + B)
    scores = model.self_influence(np.array([2, 5, 7, 300]))
    assert np.isnan(scores[2:]).all()  # 7 is no test example, 300 no training example
    for i, s in zip([2, 5], scores):
        assert s == att[np.searchsorted(tr, i), np.searchsorted(te, i)]
    add = sf.SimfluenceAdditive(sf.SimfluenceConfig()).fit(data)
    np.testing.assert_array_equal(add.factors()[2], 0.25)  # multiplicative part 1 per batch of 4
    np.testing.assert_array_equal(add.attribution(), add.factors()[3])
    mult = sf.SimfluenceMultiplicative(sf.SimfluenceConfig()).fit(data)
    np.testing.assert_array_equal(mult.factors()[3], 0.0)


# -- configuration and registration -------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, key",
    [({"lambdas": "0"}, "lambdas"), ({"lambdas": "1/-2"}, "lambdas"), ({"prior": "flat"}, "prior"),
     ({"solver": "lu"}, "solver"), ({"cg_tol": "0"}, "cg_tol"), ({"cg_max_iter": "0"}, "cg_max_iter"),
     ({"unseen": "x"}, "unseen")],
)
def test_bad_options_name_the_key(overrides: dict[str, str], key: str) -> None:
    spec = {s.name: s for s in sf.tdabench_methods()}["simfluence-linear"]
    with pytest.raises(ConfigError, match=key):
        spec.make_config(overrides)


def test_cli_options_parse() -> None:
    spec = {s.name: s for s in sf.tdabench_methods()}["simfluence-additive"]
    cfg = spec.make_config({"lambdas": "0.1/1", "prior": "zero", "solver": "direct", "clip": "no"})
    assert cfg.lambdas == (0.1, 1.0) and cfg.prior == "zero" and cfg.solver == "direct" and cfg.clip is False


def test_listed_and_end_to_end_through_the_cli(tmp_path: Path, synthetic: tuple[Benchmark, SyntheticTruth], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "methods", *_plugin_args()]) == 0
    listed = capsys.readouterr().out
    for name in ("simfluence-linear", "simfluence-additive", "simfluence-multiplicative"):
        assert name in listed
    root = write_benchmark(synthetic[0], tmp_path / "bench")
    out = tmp_path / "results"
    argv = ["run", "--benchmark", str(root), "--out", str(out), "--no-progress", *_plugin_args()]
    for name in VARIANTS:
        argv += ["--method", f"simfluence-{name}"]
    assert main(argv + ["--trajectory", "loss", "--trajectory", "bleu"]) == 0
    results = read_results(out)
    assert len(results) == 3 * 2 * 4
    for r in results:
        if r.split in ("unseen-test", "unseen-both"):
            assert r.status == "n/a", r
        else:
            assert r.status == "ok", r
            assert np.isfinite(r.scores["mse_all_steps"].mean)
    seen = [r for r in results if r.split == "seen" and r.trajectory == "loss" and r.method == "simfluence-linear"]
    assert seen[0].scores["spearman_final"].mean > 0.9


@pytest.mark.parametrize("variant", ["linear", "additive", "multiplicative"])
def test_cg_on_two_threads_is_bit_identical(variant: str) -> None:
    """The CG solve's row blocks on several threads give exactly the one-thread factors."""
    from tdabench import torch_threads

    bench, _ = simfluence_benchmark(n_train=60, n_test=40, sample=32, batch=4, epochs=2, noise=0.002, seed=3)
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    cls = {"linear": sf.SimfluenceLinear, "additive": sf.SimfluenceAdditive, "multiplicative": sf.SimfluenceMultiplicative}[variant]
    out = []
    for threads in (1, 2):
        with torch_threads(threads):
            model = cls(sf.SimfluenceConfig(solver="cg")).fit(data)
        out.append(model.factors())
    assert all(np.array_equal(a, b) for a, b in zip(*out))
