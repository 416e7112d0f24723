"""GPTfluence, the featurized simulator (plugins/tdabench_plugins/gptfluence*.py).

Most tests drive the training code directly with small feature matrices (fast, and the truth
can be a known function of the features); a few go through the real all-MiniLM-L6-v2 encoder
on the small synthetic benchmark, end to end, once through the CLI.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch

from tdabench.cli import main
from tdabench.data import Benchmark
from tdabench.errors import ConfigError
from tdabench.formats.gptdynamics_write import write_benchmark
from tdabench.results.record import read_results
from tdabench.simulator import FitData
from tdabench.sources.synthetic import SyntheticTruth
from tdabench.run.views import fit_data, split_view
from tdabench_plugins import gptfluence as gf
from tdabench_plugins.encoder import TextEncoder, encoder_key
from tdabench_plugins.gptfluence._nets import build_net
from tdabench_plugins.gptfluence._train import (
    RunSet, TrainSettings, _block_loss, _history, constant_factors, fit_factors, rollout, used_columns,
)

SMALL = {"width": 32, "epochs": 3, "batch_size": 256, "warmup_steps": 20}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session's method cache (the same folder the CLI uses through TDABENCH_CACHE)."""
    return str(tmp_path_factory.getbasetemp() / "cache")


def _data(bench: Benchmark, cache_dir: str, metric: str = "loss", seed: int = 0) -> FitData:
    return fit_data(bench, metric, seed=seed, with_model=False, cache_dir=cache_dir, device="cpu")


def _config(**over: object) -> gf.GPTfluenceConfig:
    return gf.GPTfluenceConfig(**{**SMALL, **over})  # type: ignore[arg-type]


def _plugin_args() -> list[str]:
    """Load the plugin explicitly when the installed metadata predates its entry point."""
    names = {ep.name for ep in entry_points(group="tdabench")}
    return [] if "gptfluence" in names else ["-p", "tdabench_plugins.gptfluence"]


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float32)


# -- synthetic dynamics whose factors are a known function of the features ---------------
def feature_dynamics(
    *, n_train: int = 40, n_test: int = 60, n_runs: int = 26, sample: int = 24, batch: int = 4,
    epochs: int = 4, d: int = 8, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, X_test, pos [R, T-1, batch], values [R, n_test, T]) of an exact dot-form process.

    A_iz = <a(x_i), a(x_z)> and B_iz = <b(x_i), b(x_z)> with affine a, b: a batch keeps about
    97% of the value and adds a little, both depending on the two examples' features.
    """
    rng = np.random.default_rng(seed)
    x_tr, x_te = rng.normal(size=(n_train, d)), rng.normal(size=(n_test, d))
    P, Q = rng.normal(size=(d, 4)) / np.sqrt(d), rng.normal(size=(d, 4)) / np.sqrt(d)

    def feat(x: np.ndarray, M: np.ndarray, c: float) -> np.ndarray:
        return c / 2.0 + 0.02 * (x @ M)

    A = feat(x_tr, P, np.sqrt(0.97 / batch)) @ feat(x_te, P, np.sqrt(0.97 / batch)).T
    B = feat(x_tr, Q, np.sqrt(0.006)) @ feat(x_te, Q, np.sqrt(0.006)).T
    T = sample // batch * epochs
    pos = np.empty((n_runs, T - 1, batch), np.int64)
    vals = np.empty((n_runs, n_test, T))
    y0 = 2.0 + 0.5 * np.tanh(x_te[:, 0])
    for r in range(n_runs):
        chosen = rng.choice(n_train, sample, replace=False)
        batches = np.concatenate([rng.permutation(chosen) for _ in range(epochs)]).reshape(T, batch)
        y = y0 + rng.normal(0, 0.02, n_test)
        vals[r, :, 0] = y
        for t in range(1, T):
            y = A[batches[t]].sum(0) * y + B[batches[t]].sum(0)
            vals[r, :, t] = y
        pos[r] = batches[1:]
    return x_tr.astype(np.float32), x_te.astype(np.float32), pos, vals


def test_learns_feature_factors_on_seen_and_generalizes_to_held_out_test_examples() -> None:
    x_tr, x_te, pos, vals = feature_dynamics()
    seen, held = np.arange(48), np.arange(48, 60)
    scale = float(np.sqrt((vals[:22][:, seen] ** 2).mean()))
    fit = RunSet(torch.as_tensor(pos[:20]), _tensor(vals[:20][:, seen] / scale))
    val = RunSet(torch.as_tensor(pos[20:22]), _tensor(vals[20:22][:, seen] / scale))
    net = build_net("dot", 8, 32, 1, torch.Generator().manual_seed(0))
    net.init_constant(_tensor(x_tr), _tensor(x_te[seen]), constant_factors(fit, 1), 0.1)
    res = fit_factors(net, _tensor(x_tr), _tensor(x_te[seen]), fit, val, TrainSettings(lr=0.1, epochs=8, batch_size=256, warmup_steps=50))
    assert res.selection == "validation" and 1 <= res.best_epoch <= res.epochs_run
    ev = vals[22:]
    fit_delta = (vals[:20][:, seen] - vals[:20][:, seen, :1]).mean(0)  # mean-trajectory baseline
    with torch.no_grad():
        for rows, delta in ((seen, fit_delta), (held, fit_delta.mean(0, keepdims=True))):
            tr, te = net.represent(_tensor(x_tr), _tensor(x_te[rows]))
            pred = rollout(net, tr, te, torch.as_tensor(pos[22:]), _tensor(ev[:, rows, 0] / scale)).numpy() * scale
            mse = ((pred - ev[:, rows]) ** 2)[..., 1:].mean()
            baseline = ((ev[:, rows, :1] + delta[None] - ev[:, rows]) ** 2)[..., 1:].mean()
            assert mse < 0.2 * baseline, (rows.tolist()[:3], mse, baseline)


# -- n-th order and interval: against slow references -----------------------------------
def _slow_rollout(A: np.ndarray, B: np.ndarray, pos: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Per run, test example and step, from per-pair factors; history before t = 0 is y_0."""
    R, C, _ = pos.shape
    n = A.shape[2]
    out = np.zeros((R, initial.shape[1], C + 1))
    for r in range(R):
        for z in range(initial.shape[1]):
            ys = [initial[r, z]]
            for t in range(C):
                ids = [i for i in pos[r, t] if i >= 0]
                past = [ys[max(len(ys) - j, 0)] for j in range(1, n + 1)]
                ys.append(sum(A[ids, z, j].sum() * past[j] for j in range(n)) + B[ids, z].sum())
            out[r, z] = ys
    return out


@pytest.mark.parametrize("form", ["dot", "concat"])
def test_order_n_rollout_and_loss_match_slow_references(form: str) -> None:
    rng = np.random.default_rng(1)
    order, n_tr, n_te, R, K = 3, 7, 5, 2, 9
    h_tr, h_te = _tensor(rng.normal(size=(n_tr, 6))), _tensor(rng.normal(size=(n_te, 6)))
    net = build_net(form, 6, 16, order, torch.Generator().manual_seed(3))
    pos = rng.integers(0, n_tr, size=(R, K - 1, 3))
    pos[0, 2, 1] = -1  # padding
    values = rng.uniform(1.0, 2.0, size=(R, n_te, K))
    with torch.no_grad():
        tr, te = net.represent(h_tr, h_te)
        f = net.pairs(tr, te).double().numpy()  # [n_tr, n_te, order + 1]
        fast = rollout(net, tr, te, torch.as_tensor(pos), _tensor(values[..., 0])).double().numpy()
        slow = _slow_rollout(f[..., :order], f[..., order], pos, values[..., 0])
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)
        # The teacher-forced loss of one transition: history from the recorded values.
        fit = RunSet(torch.as_tensor(pos), _tensor(values))
        hist = _history(fit.values, 1, order)
        r, c, z = torch.tensor([1]), torch.tensor([1]), torch.arange(n_te)
        loss = float(_block_loss(net, h_tr, h_te, fit, hist, r, c, z, 1))
        past = [values[1, :, 1], values[1, :, 0], values[1, :, 0]]  # y_1, y_0, y_0 (y_-1 := y_0)
        ids = pos[1, 1]
        pred = sum(f[ids, :, j].sum(0) * past[j] for j in range(order)) + f[ids, :, order].sum(0)
        assert loss == pytest.approx(float(((pred - values[1, :, 2]) ** 2).mean()), rel=1e-4)


def test_interval_composes_steps_and_reads_only_every_kth_value() -> None:
    rng = np.random.default_rng(2)
    k, K, n_tr, n_te = 3, 11, 6, 4
    h_tr, h_te = _tensor(rng.normal(size=(n_tr, 5))), _tensor(rng.normal(size=(n_te, 5)))
    net = build_net("dot", 5, 8, 1, torch.Generator().manual_seed(0))
    pos = torch.as_tensor(rng.integers(0, n_tr, size=(1, K - 1, 2)))
    values = _tensor(rng.uniform(1.0, 2.0, size=(1, n_te, K)))
    assert used_columns(K, k).tolist() == [0, 3, 6, 9]
    fit = RunSet(pos, values)
    with torch.no_grad():
        # A k-column transition is k steps of the per-step model from the recorded start value.
        loss = _block_loss(net, h_tr, h_te, fit, _history(values, k, 1), torch.tensor([0]), torch.tensor([3]), torch.arange(n_te), k)
        tr, te = net.represent(h_tr, h_te)
        y = rollout(net, tr, te, pos[:, 3:6], values[..., 3])[..., -1]
        assert float(loss) == pytest.approx(float(((y - values[..., 6]) ** 2).mean()), rel=1e-5)


def test_interval_fit_ignores_the_values_between_every_kth(synthetic: tuple[Benchmark, SyntheticTruth], cache_dir: str) -> None:
    data = _data(synthetic[0], cache_dir)
    K = data.values.shape[2]
    skipped = np.setdiff1d(np.arange(K), used_columns(K, 3))
    rng = np.random.default_rng(0)
    corrupt = dataclasses.replace(
        data,
        values=data.values.copy(),
        validation_values=data.validation_values.copy(),
    )
    corrupt.values[..., skipped] = rng.uniform(-50, 50, size=corrupt.values[..., skipped].shape)
    corrupt.validation_values[..., skipped] = np.nan
    view = split_view(synthetic[0], "seen", "loss", seed=0)
    a = gf.GPTfluence(_config(interval=3)).fit(data).simulate(view.query)
    b = gf.GPTfluence(_config(interval=3)).fit(corrupt).simulate(view.query)
    np.testing.assert_array_equal(a, b)
    c = gf.GPTfluence(_config(interval=1)).fit(corrupt).simulate(view.query)
    assert not np.allclose(a, c)  # interval 1 does read those values


# -- the simulator through the real encoder ----------------------------------------------
def test_all_splits_factors_and_self_influence(synthetic: tuple[Benchmark, SyntheticTruth], cache_dir: str) -> None:
    bench = synthetic[0]
    # The published rollout, so that one step is exactly the factor sums: no clamp, no neighbors.
    sim = gf.GPTfluence(_config(clamp_factors=False, unseen_test="features", unseen_train="features")).fit(_data(bench, cache_dir))
    info = sim.fit_info()
    assert info["selected_on"] == "validation" and info["best_epoch"] >= 1 and np.isfinite(info["best_select_mse"])
    encoded_after_fit = sim.encoder_.n_encoded
    for split in ("seen", "unseen-train", "unseen-test", "unseen-both"):
        view = split_view(bench, split, "loss", seed=0)
        pred = sim.simulate(view.query)
        assert pred.shape == view.query.shape and np.isfinite(pred).all()
        np.testing.assert_array_equal(pred[:, :, 0], view.query.initial)
    # Unseen examples were embedded at simulation time (held-out tests, pool-B training examples).
    assert sim.encoder_.n_encoded > encoded_after_fit
    view = split_view(bench, "unseen-test", "loss", seed=0)
    run_ids = view.query.runs.transitions()[:, 0]  # the first transition of each run
    pf = sim.factors(np.unique(run_ids[run_ids >= 0]), view.query.test.ids)
    assert pf.A.shape == (len(pf.train_ids), len(view.query.test), 1) and pf.B.shape == pf.A.shape[:2]
    # One rollout step equals the factor sums applied to the initial value.
    pred = sim.simulate(view.query)
    rows = np.searchsorted(pf.train_ids, run_ids)
    step = pf.A[rows, :, 0].sum(1) * view.query.initial + pf.B[rows].sum(1)
    np.testing.assert_allclose(pred[:, :, 1], step, rtol=1e-4, atol=1e-5)
    # Self-influence: the one-step effect of an example on itself (its text on both sides).
    ids = bench.train.ids[:5]
    si = sim.self_influence(ids)
    assert si.shape == (5,) and np.isfinite(si).all()
    sim.texts_["test"].update(zip(ids.tolist(), bench.train.texts[:5]))  # the same texts as tests
    pf = sim.factors(ids, ids)
    level = np.nanmean(sim.level_)  # these training examples are no fitted test examples
    np.testing.assert_allclose(si, (np.diag(pf.A[:, :, 0]) - 1 / sim.members_) * level + np.diag(pf.B), rtol=1e-4, atol=1e-7)
    with pytest.raises(KeyError, match="has not met"):
        sim.factors([123456], view.query.test.ids)


def test_an_unseen_training_example_stands_in_by_its_nearest_fitted_one(synthetic: tuple[Benchmark, SyntheticTruth], cache_dir: str) -> None:
    bench = synthetic[0]
    sim = gf.GPTfluence(_config(unseen_train="neighbors", neighbors=1)).fit(_data(bench, cache_dir))
    query = split_view(bench, "unseen-train", "loss", seed=0).query
    new = np.unique(query.runs.batches[query.runs.batches >= 0])
    assert not np.isin(new, sim.fit_train_ids_).any()  # the split's runs train on pool B only
    # With one neighbor, each new example is exactly its most similar fitted example (by cosine).
    texts = dict(zip(query.train.ids.tolist(), query.train.texts))
    unit = gf._model._unit(sim.encoder_.embed([texts[int(i)] for i in new]))
    nearest = sim.fit_train_ids_[np.argmax(unit @ sim.fit_train_unit_.T, axis=1)]
    mapped = np.where(query.runs.batches >= 0, nearest[np.searchsorted(new, query.runs.batches.clip(min=new[0]))], -1)
    swapped = dataclasses.replace(query, runs=dataclasses.replace(query.runs, batches=mapped),
                                  train=bench.train.subset(np.union1d(sim.fit_train_ids_, nearest)))
    np.testing.assert_allclose(sim.simulate(query), sim.simulate(swapped), rtol=1e-5, atol=1e-6)
    # As published, the new examples' own features: another prediction.
    own = gf.GPTfluence(_config(unseen_train="features")).fit(_data(bench, cache_dir)).simulate(query)
    assert not np.allclose(own, sim.simulate(query))


def test_same_seed_same_predictions(synthetic: tuple[Benchmark, SyntheticTruth], cache_dir: str) -> None:
    bench = synthetic[0]
    view = split_view(bench, "seen", "loss", seed=0)
    a = gf.GPTfluence(_config()).fit(_data(bench, cache_dir, seed=7)).simulate(view.query)
    b = gf.GPTfluence(_config()).fit(_data(bench, cache_dir, seed=7)).simulate(view.query)
    c = gf.GPTfluence(_config()).fit(_data(bench, cache_dir, seed=8)).simulate(view.query)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("over", [{"form": "concat", "order": 2}, {"form": "dot", "order": 3, "pooling": "mean"}])
def test_options_end_to_end(synthetic: tuple[Benchmark, SyntheticTruth], cache_dir: str, over: dict[str, object]) -> None:
    bench = synthetic[0]
    sim = gf.GPTfluence(_config(**over)).fit(_data(bench, cache_dir))
    view = split_view(bench, "unseen-both", "loss", seed=0)
    pred = sim.simulate(view.query)
    assert np.isfinite(pred).all() and sim.net_.order == over["order"]
    pf = sim.factors(bench.train.ids[:3], view.query.test.ids)
    assert pf.A.shape == (3, len(view.query.test), over["order"])


def test_metric_scale_is_normalized_and_restored(synthetic: tuple[Benchmark, SyntheticTruth], cache_dir: str) -> None:
    """BLEU-like values (0-100) are learned on y / scale: scaling the data scales the prediction."""
    bench = synthetic[0]
    data = _data(bench, cache_dir, metric="bleu")
    view = split_view(bench, "seen", "bleu", seed=0)
    sim = gf.GPTfluence(_config()).fit(data)
    pred = sim.simulate(view.query)
    assert sim.scale_ > 10  # BLEU values are tens, not ones
    tiny = dataclasses.replace(data, values=data.values / 100, validation_values=data.validation_values / 100)
    small = gf.GPTfluence(_config()).fit(tiny).simulate(dataclasses.replace(view.query, initial=view.query.initial / 100))
    np.testing.assert_allclose(small * 100, pred, rtol=1e-3, atol=1e-3)
    naive = np.repeat(view.query.initial[:, :, None], pred.shape[2], axis=2)
    assert ((pred - view.truth) ** 2).mean() < ((naive - view.truth) ** 2).mean()


# -- encoder and cache --------------------------------------------------------------------
def test_embedding_cache_is_keyed_and_reused(tmp_path: Path) -> None:
    texts = ["The cat sat on the mat.", "A quite different sentence about the stock market.", "The cat sat on the mat."]
    enc = TextEncoder("all-MiniLM-L6-v2", "first", 512, 8, tmp_path)
    first = enc.embed(texts)
    assert first.shape == (3, 384) and enc.n_encoded == 2  # the duplicate text is encoded once
    np.testing.assert_array_equal(first[0], first[2])
    files = sorted(tmp_path.rglob("*.npy"))
    assert len(files) == 2 and all(enc.key in str(f) for f in files)
    again = TextEncoder("all-MiniLM-L6-v2", "first", 512, 8, tmp_path)
    np.testing.assert_array_equal(again.embed(texts), first)
    assert again.n_encoded == 0 and again._model is None  # served from disk, model never loaded
    mean = TextEncoder("all-MiniLM-L6-v2", "mean", 512, 8, tmp_path)
    assert mean.key != enc.key and not np.allclose(mean.embed(texts[:1]), first[:1])
    assert encoder_key(enc.location, "first", 256) != enc.key  # the token limit is part of the key
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files
    restored = pickle.loads(pickle.dumps(mean))  # a pickled simulator carries no encoder weights
    assert restored._model is None and len(pickle.dumps(mean)) < 100_000
    np.testing.assert_array_equal(restored.embed(texts[:1]), mean.embed(texts[:1]))


def test_long_texts_are_cut_at_max_length(tmp_path: Path) -> None:
    enc = TextEncoder("all-MiniLM-L6-v2", "mean", 16, 8, None)
    long = "word " * 2000  # far beyond the model's 512 positions: must not fail
    base = enc.embed([long, "word " * 40])
    assert np.isfinite(base).all()
    np.testing.assert_allclose(base[0], base[1], atol=1e-5)  # both cut to the same 16 tokens


# -- configuration and registration -------------------------------------------------------
def test_threads_option_is_scoped() -> None:
    torch.set_num_threads(2)
    with gf.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with gf.torch_threads(0):  # 0 leaves torch's setting alone
        assert torch.get_num_threads() == 2


def test_config_validation_names_the_key() -> None:
    spec = {s.name: s for s in gf.tdabench_methods()}["gptfluence"]
    cfg = spec.make_config({"form": "concat", "order": "3", "interval": "2", "pooling": "mean", "clip": "no"})
    assert (cfg.form, cfg.order, cfg.interval, cfg.pooling, cfg.clip) == ("concat", 3, 2, "mean", False)
    caps = spec.capabilities
    assert caps.unseen_test and caps.unseen_train and caps.text_trajectories and caps.needs_text
    for key, bad in (("form", "sum"), ("order", "0"), ("interval", "-1"), ("lr", "0"), ("width", "-3"), ("pooling", "max"), ("threads", "-1")):
        with pytest.raises(ConfigError, match=key):
            spec.make_config({key: bad})


def test_end_to_end_through_the_cli(tmp_path: Path, synthetic: tuple[Benchmark, SyntheticTruth], capsys: pytest.CaptureFixture[str]) -> None:
    root = write_benchmark(synthetic[0], tmp_path / "bench")
    out = tmp_path / "results"
    opts = ",".join(f"{k}={v}" for k, v in SMALL.items())
    argv = ["run", "--benchmark", str(root), "--method", f"gptfluence:{opts}", "--out", str(out), "--no-progress", *_plugin_args()]
    assert main(argv + ["--trajectory", "loss", "--trajectory", "bleu"]) == 0
    results = read_results(out)
    assert len(results) == 2 * 4
    for r in results:
        assert r.status == "ok", r
        assert np.isfinite(r.scores["mse_all_steps"].mean)
        assert r.fit_info["best_epoch"] >= 1
    capsys.readouterr()


@pytest.mark.slow
def test_default_config_beats_mean_trajectory_at_gptdynamics_size(cache_dir: str) -> None:
    """25 fit runs x 96 steps x 128 test examples (about 25 s): seen and unseen-test MSE."""
    from tdabench.scoring import score
    from tdabench.simulator import NoConfig
    from tdabench.sources.synthetic import simfluence_benchmark
    from tdabench_plugins.baselines import MeanTrajectory

    bench, _ = simfluence_benchmark(n_train=200, n_test=160, n_runs=32, sample=128, batch=4, epochs=3, noise=0.002, seed=0)
    data = _data(bench, cache_dir)
    sim = gf.GPTfluence(gf.GPTfluenceConfig()).fit(data)
    base = MeanTrajectory(NoConfig()).fit(data)
    for split in ("seen", "unseen-test"):
        view = split_view(bench, split, "loss", seed=0)
        ours = score(sim.simulate(view.query), view.truth, n_boot=10)["mse_all_steps"].mean
        theirs = score(base.simulate(view.query), view.truth, n_boot=10)["mse_all_steps"].mean
        assert ours < theirs, (split, ours, theirs)


def test_large_fits_take_larger_steps_and_bank_fits_do_not() -> None:
    """Version 6: the minibatch grows past batch_size only when an epoch would exceed the cap."""
    from tdabench_plugins.gptfluence._train import block_shape, epoch_batch

    assert epoch_batch(1024, 25 * 95 * 128, 500) == 1024  # a bank-size fit: unchanged
    it = 25 * 287 * 1055  # GPTDynamics' instruction-tuning shape
    assert epoch_batch(1024, it, 0) == 1024  # 0: version 5's fixed blocks
    batch = epoch_batch(1024, it, 500)
    rows, tests = block_shape(batch, 25 * 287, 1055)
    assert batch == math.ceil(it / 500) and (rows, tests) == (123, 123)
    assert math.ceil(25 * 287 / rows) * math.ceil(1055 / tests) <= 540  # about the cap
