"""TracIn-CP, Grad-Dot and influence functions (plugins/tdabench_plugins/grad*.py).

A tiny real GPT-NeoX (0.2M parameters) is trained for a few steps per run here, with
checkpoints, and written as a benchmark; the checks compare against explicit autograd loops,
exact inverses and leave-one-out retraining of a convex model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch.func import functional_call, grad, hessian, jvp, vmap

import tdabench
from tdabench.cli import main
from tdabench.run.context import Context
from tdabench.data import Benchmark, BenchmarkMeta, ExampleSet, ModelAccess, Run, SplitSpec, Trajectory
from tdabench.errors import ConfigError
from tdabench.methods.guards import fitted_values, guard_range
from tdabench.formats.gptdynamics_write import write_benchmark
from tdabench.methods.lm import encode, evaluate, per_example_loss
from tdabench.recorder.models import fresh_model
from tdabench.recorder.tokenizer import bank_tokenizer
from tdabench.results.record import read_results
from tdabench.sources.splits import heldout_test_ids
from tdabench.testing import conformance_test
from tdabench.run.views import fit_data, split_view
from tdabench_plugins.gradients._ihvp import Curvature, FisherSolver, lissa, multishift_cg
from tdabench_plugins.gradients._per_example import GradientEngine, selected_names
from tdabench_plugins.gradients._project import Projector, error_bound
from tdabench_plugins.gradients._scores import check_fits, cross_scores

BANK = Path(tdabench.__file__).resolve().parent / "bank" / "tasks"
_STATE: dict[str, Benchmark] = {}
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # from torch.func.hessian


# -- a tiny real benchmark ------------------------------------------------------------------
def bank_examples(task: str, split: str, n: int, first_id: int) -> ExampleSet:
    """The first ``n`` examples of a built-in task, with ids from ``first_id``."""
    rows = []
    with open(BANK / task / f"{split}.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) == n:
                break
    prompts = tuple(r["context"] for r in rows)
    texts = tuple(r["input"] for r in rows)
    return ExampleSet(np.arange(first_id, first_id + n), prompts, tuple(t[len(p) :] for t, p in zip(texts, prompts)), texts)


def tiny_benchmark(root: Path, *, n_runs: int = 8, pool: int = 16, sample: int = 8, batch: int = 2, lr: float = 0.05) -> Benchmark:
    """Runs of SGD on a fresh neox-0.2m; run0 saves checkpoints at steps 2 (a state_dict file)
    and 4 (a ``save_pretrained`` directory); one extra run trains on a second pool (unseen-train)."""
    loss_type = "output-tokens"
    tok = bank_tokenizer()
    train = bank_examples("sentiment", "train", 2 * pool, 0)
    test = bank_examples("sentiment", "test", 8, 1000)
    model = fresh_model("neox-0.2m", len(tok), seed=0)
    base = root / "model" / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    enc_train = encode(tok, train.prompts, train.targets, loss_type, max_length=64)
    enc_test = encode(tok, test.prompts, test.targets, loss_type, max_length=64)
    start = copy.deepcopy(model.state_dict())
    rng = np.random.default_rng(0)
    runs, ckpts = [], {}
    for r in range(n_runs + 1):
        model.load_state_dict(start)
        lo = 0 if r < n_runs else pool
        batches = rng.choice(np.arange(lo, lo + pool), size=sample, replace=False).reshape(-1, batch)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        values = [evaluate(model, enc_test, bf16=False)]
        for t, b in enumerate(batches, start=1):
            opt.zero_grad()
            per_example_loss(model, enc_train.rows(b)).mean().backward()
            opt.step()
            values.append(evaluate(model, enc_test, bf16=False))
            if r == 0 and t == 2:  # a state_dict file
                from safetensors.torch import save_file

                path = root / "model" / "ckpt" / "run0-step2.safetensors"
                path.parent.mkdir(parents=True, exist_ok=True)
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
                ckpts.setdefault("run0", {})[t] = path
            elif r == 0 and t == 4:  # a save_pretrained directory (legacy tensor names)
                ckpts["run0"][t] = root / "model" / "ckpt" / "run0-step4"
                model.save_pretrained(ckpts["run0"][t])
        T = len(batches)
        runs.append(Run(f"run{r}", r, batches, np.full(T, lr), {"loss": Trajectory(np.arange(T + 1), np.stack(values, 1))}, {"seed": str(r)}))
    names = [r.name for r in runs]
    split = SplitSpec(
        fit_runs=tuple(names[: n_runs - 2]), validation_runs=(names[n_runs - 2],), eval_runs=(names[n_runs - 1],),
        unseen_train_runs=(names[n_runs],), heldout_test_ids=tuple(int(i) for i in heldout_test_ids(test.ids)), rule="tiny",
    )
    meta = BenchmarkMeta(model="neox-0.2m", task="sentiment", setting="ft", loss_type=loss_type, source="test")
    return Benchmark("test/ft/neox-0.2m/sentiment", meta, train, test, tuple(runs), split, root, ModelAccess(base, ckpts, loss_type))


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread: the cores are shared, and small models run faster without threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, _one_thread: None) -> Benchmark:
    """The tiny benchmark, built once per module."""
    if "bench" not in _STATE:
        _STATE["bench"] = tiny_benchmark(tmp_path_factory.mktemp("tiny"))
    return _STATE["bench"]


def _fit(name: str, bench: Benchmark, **config: object) -> object:
    spec = Context.create(progress=False).registry.method(name)
    return spec.create(spec.make_config(config)).fit(fit_data(bench, "loss", seed=0, with_model=True, cache_dir=None, device="cpu"))


def _explicit_grads(sim: object, examples: ExampleSet, step: int) -> torch.Tensor:
    """[n, D] gradients one example at a time (no padding) with torch.autograd.grad."""
    model = copy.deepcopy(sim.handle_.model)  # type: ignore[attr-defined]
    model.load_state_dict(sim.handle_.params_at(step), strict=False)  # type: ignore[attr-defined]
    params = [p.requires_grad_(True) for p in model.parameters()]
    out = []
    for p, t in zip(examples.prompts, examples.targets):
        enc = encode(sim.handle_.tokenizer, [p], [t], sim.handle_.loss_type, max_length=256)  # type: ignore[attr-defined]
        grads = torch.autograd.grad(per_example_loss(model, enc)[0], params)
        out.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(out).double()


# -- TracIn against explicit loops ------------------------------------------------------------
def test_tracin_scores_and_rollout_match_explicit_autograd_loop(tiny: Benchmark) -> None:
    sim = _fit("tracin-cp", tiny, clip=False)  # the unguarded sum (the guard: next test)
    assert sim.steps_ == (0, 2, 4)  # base model + run0's two checkpoints
    grads_tr = {s: _explicit_grads(sim, tiny.train, s) for s in sim.steps_}
    grads_te = {s: _explicit_grads(sim, tiny.test, s) for s in sim.steps_}
    fit_tr, fit_te = tiny.train.positions(sim.train_.ids), tiny.test.positions(sim.test_.ids)
    for c, s in enumerate(sim.steps_):
        explicit = np.array([[float(grads_tr[s][i] @ grads_te[s][z]) for z in fit_te] for i in fit_tr])
        np.testing.assert_allclose(sim.scores_[c], explicit, rtol=2e-4, atol=1e-6 * np.abs(explicit).max())
    # the rollout of every split (fresh gradients for unseen examples) against a plain loop
    for split in ("seen", "unseen-test", "unseen-train", "unseen-both"):
        q = split_view(tiny, split, "loss", seed=0).query
        pred = sim.simulate(q)
        te = tiny.test.positions(q.test.ids)
        for r in range(len(q.runs)):
            y = q.initial[r].copy()
            for t in range(1, q.runs.batches.shape[1] + 1):
                s = max([k for k in sim.steps_ if k <= t - 1] or [min(sim.steps_)])  # the weights step t was taken at
                batch = [i for i in q.runs.batches[r, t - 1] if i >= 0]
                for z in range(len(te)):
                    dots = sum(float(grads_tr[s][tiny.train.positions(np.array([i]))[0]] @ grads_te[s][te[z]]) for i in batch)
                    y[z] -= q.runs.lr[r, t - 1] / len(batch) * dots
                # float32 gradients: compare the predicted drops, relative to their size
                np.testing.assert_allclose(pred[r, :, t] - q.initial[r], y - q.initial[r], rtol=2e-4, atol=1e-6, err_msg=f"{split} run {r} step {t}")


def test_the_guard_clips_the_sum_at_zero_and_the_widened_range(tiny: Benchmark) -> None:
    guarded, raw = _fit("tracin-cp", tiny), _fit("tracin-cp", tiny, clip=False)
    fd = fit_data(tiny, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    lo, hi = guard_range(fitted_values(fd))
    assert guarded.bounds_ == (lo, hi) and lo == 0.0  # no recorded loss is negative: the floor is 0, not lo - span
    q = split_view(tiny, "unseen-both", "loss", seed=0).query
    unclipped = raw.simulate(q)
    assert unclipped.min() < 0.0  # the tiny model's raw sum overshoots below zero
    np.testing.assert_array_equal(guarded.simulate(q), np.clip(unclipped, 0.0, hi))


def test_checkpoints_load_as_state_dict_files_and_pretrained_directories(tiny: Benchmark) -> None:
    from transformers import AutoModelForCausalLM

    sim = _fit("grad-dot", tiny)
    saved = AutoModelForCausalLM.from_pretrained(str(tiny.model.checkpoints["run0"][4]))  # type: ignore[union-attr]
    got = sim.handle_.params_at(4)
    assert set(got) == {n for n, _ in saved.named_parameters()}
    for name, p in saved.named_parameters():
        torch.testing.assert_close(got[name], p.detach(), rtol=0, atol=0)
    assert not torch.equal(got["lm_head.weight"], sim.handle_.params_at(0)["lm_head.weight"])


@pytest.mark.parametrize("loss_type", ["output-tokens", "last-token", "whole-sequence"])
def test_per_example_gradients_follow_the_loss_mask_under_padding(tiny: Benchmark, loss_type: str) -> None:
    sim = _fit("grad-dot", tiny)
    sim.handle_.loss_type = loss_type
    ex = tiny.test.subset(tiny.test.ids[:4])
    enc = encode(sim.handle_.tokenizer, ex.prompts, ex.targets, loss_type, max_length=256)
    assert len(set(enc.attention_mask.sum(1).tolist())) > 1, "examples of different lengths share a padded chunk"
    got = sim.engine_.grads(sim.handle_.params_at(4), enc)
    np.testing.assert_allclose(got.double().numpy(), _explicit_grads(sim, ex, 4).numpy(), rtol=1e-4, atol=1e-6)


def test_grad_dot_uses_the_final_checkpoint_and_calibration_scales(tiny: Benchmark) -> None:
    raw, cal = _fit("grad-dot", tiny), _fit("grad-dot-calibrated", tiny)
    assert raw.steps_ == (4,) and raw.scale_ == 1.0
    q = split_view(tiny, "seen", "loss", seed=0).query
    moved_raw = raw.simulate(q) - q.initial[:, :, None]
    moved_cal = cal.simulate(q) - q.initial[:, :, None]
    np.testing.assert_allclose(moved_cal, cal.scale_ * moved_raw, rtol=1e-6, atol=1e-9)
    # the scale is the least-squares fit of the predicted drop on the fit runs
    fd = fit_data(tiny, "loss", seed=0, with_model=True, cache_dir=None, device="cpu")
    pred = raw._predict(raw.scores_, fd.train.ids, fd.runs, fd.values[:, :, 0], 1.0) - fd.values[:, :, :1]
    true = fd.values - fd.values[:, :, :1]
    assert cal.scale_ == pytest.approx(float((pred * true).sum() / (pred * pred).sum()), rel=1e-6)


# -- duplicates and self-influence ----------------------------------------------------------
@pytest.mark.parametrize(("name", "config"), [
    ("tracin-cp", {"params": "last-layer"}),
    ("influence", {"solver": "fisher", "projection_dim": 512}),
])
def test_a_duplicated_training_example_scores_highest(tiny: Benchmark, name: str, config: dict[str, object]) -> None:
    sim = _fit(name, tiny, **config)
    train = sim.train_
    dup = ExampleSet(train.ids + 5000, train.prompts, train.targets, train.texts)
    scores = sim.pairwise_scores(test=dup)  # [n_train, n_dup], train x test
    assert scores.shape == (len(train), len(dup))
    assert (np.diag(scores) > 0).all()
    np.testing.assert_array_equal(scores.argmax(axis=0), np.arange(len(train)))
    np.testing.assert_allclose(sim.self_scores(), np.diag(scores), rtol=1e-3)
    ids = np.array([train.ids[1], 10**9, train.ids[0]])
    si = sim.self_influence(ids)  # the predicted change of an example's own loss: minus its self-score
    np.testing.assert_allclose(si[[0, 2]], -np.diag(scores)[[1, 0]], rtol=1e-3)
    assert np.isnan(si[1])


# -- projection ----------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "params", "dim"), [("sketch", "all", 1024), ("gaussian", "last-layer", 512)])
def test_projection_preserves_inner_products_within_the_documented_error(tiny: Benchmark, kind: str, params: str, dim: int) -> None:
    sim = _fit("grad-dot", tiny, params=params)
    model, step = sim.handle_.model, 4
    names = selected_names(model, params)
    enc = encode(sim.handle_.tokenizer, tiny.train.prompts, tiny.train.targets, "output-tokens", 64)
    full = GradientEngine(model, names, projector=None, memory_bytes=1 << 28).grads(sim.handle_.params_at(step), enc).double()
    sizes = {n: p.numel() for n, p in model.named_parameters() if n in names}
    proj = GradientEngine(model, names, projector=Projector(sizes, dim, kind, seed=3), memory_bytes=1 << 28)
    low = proj.grads(sim.handle_.params_at(step), enc).double()
    norms = full.norm(dim=1)
    rel_err = ((low @ low.T - full @ full.T) / torch.outer(norms, norms)).numpy()[np.triu_indices(len(enc))]
    assert np.mean(np.abs(rel_err) <= 3 * error_bound(dim)) >= 0.99
    assert np.sqrt(np.mean(rel_err**2)) <= error_bound(dim)
    again = proj.grads(sim.handle_.params_at(step), enc)  # seeded: the same map every call
    np.testing.assert_array_equal(again.double().numpy(), low.numpy())


def test_memory_budget_splits_chunks_and_parameter_groups(tiny: Benchmark) -> None:
    sim = _fit("grad-dot", tiny)
    model, params = sim.handle_.model, sim.handle_.params_at(4)
    names = selected_names(model, "all")
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    enc = encode(sim.handle_.tokenizer, tiny.test.prompts, tiny.test.targets, "output-tokens", 64)
    roomy = GradientEngine(model, names, projector=Projector(sizes, 256, "sketch", 0), memory_bytes=1 << 30)
    tight = GradientEngine(model, names, projector=Projector(sizes, 256, "sketch", 0), memory_bytes=2_000_000)
    assert len(roomy.groups) == 1 and len(tight.groups) > 1 and tight.chunk_rows(40) == 1
    np.testing.assert_allclose(tight.grads(params, enc).numpy(), roomy.grads(params, enc).numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="projection_dim"):
        check_fits(GradientEngine(model, names, projector=None, memory_bytes=1 << 19), 1 << 19)  # 0.8 MB per gradient
    # a held block smaller than the left set still gives the same scores
    small = cross_scores(roomy, params, enc, enc, budget_bytes=4 * 256 * 6)
    big = cross_scores(roomy, params, enc, enc, budget_bytes=1 << 28)
    np.testing.assert_allclose(small, big, rtol=1e-6)


# -- inverse-Hessian-vector products on a convex model ---------------------------------------
def _logistic(n: int = 40, d: int = 6, reg: float = 0.05, seed: int = 0):  # noqa: ANN202
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(X @ torch.linspace(-1, 1, d, dtype=torch.float64))).double()

    def losses(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y, reduction="none")

    def objective(w: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return (losses(w, X, y) * keep).sum() / keep.sum() + 0.5 * reg * (w @ w)

    def train(keep: torch.Tensor, start: torch.Tensor | None = None, iters: int = 30) -> torch.Tensor:
        w = torch.zeros(d, dtype=torch.float64) if start is None else start
        for _ in range(iters):  # Newton's method: the objective is strongly convex
            w = w - torch.linalg.solve(hessian(objective)(w, keep), grad(objective)(w, keep))
        return w

    return X, y, losses, objective, train


def test_cg_lissa_and_fisher_match_explicit_inverses() -> None:
    X, y, losses, objective, train = _logistic()
    keep = torch.ones(len(X), dtype=torch.float64)
    w = train(keep)
    H = hessian(objective)(w, keep)

    def matvec(V: torch.Tensor) -> torch.Tensor:
        return vmap(lambda v: jvp(lambda u: grad(objective)(u, keep), (w,), (v,))[1])(V)

    B = torch.randn(3, len(w), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lams = [0.0, 0.01, 1.0]
    sols, steps, residuals = multishift_cg(matvec, B, lams, max_iter=len(w), tol=1e-12)
    assert steps <= len(w) and max(residuals) < 1e-8
    for lam, x in zip(lams, sols):
        exact = torch.linalg.solve(H + lam * torch.eye(len(w), dtype=torch.float64), B.T).T
        np.testing.assert_allclose(x.numpy(), exact.numpy(), rtol=1e-7, atol=1e-9)
    top = float(torch.linalg.eigvalsh(H).max())
    exact = torch.linalg.solve(H + 0.1 * torch.eye(len(w), dtype=torch.float64), B.T).T
    np.testing.assert_allclose(lissa(lambda V: V @ H, B, 0.1, scale=1.1 * (top + 0.1), depth=2000).numpy(), exact.numpy(), rtol=1e-6, atol=1e-8)
    G = vmap(grad(lambda u, x, t: losses(u, x[None], t[None])[0]), in_dims=(None, 0, 0))(w, X, y)
    F = G.T @ G / len(G)
    exact = torch.linalg.solve(F + 0.1 * torch.eye(len(w), dtype=torch.float64), B.T).T
    np.testing.assert_allclose(FisherSolver(G).solve(B, 0.1).double().numpy(), exact.numpy(), rtol=1e-5, atol=1e-6)


def test_influence_matches_leave_one_out_retraining() -> None:
    X, y, losses, objective, train = _logistic()
    n = len(X)
    keep = torch.ones(n, dtype=torch.float64)
    w = train(keep)
    Xt, yt = X[:5] + 0.3, y[:5]  # test points near, not equal to, training points
    per_example = vmap(grad(lambda u, x, t: losses(u, x[None], t[None])[0]), in_dims=(None, 0, 0))
    g_train, g_test = per_example(w, X, y), per_example(w, Xt, yt)

    def matvec(V: torch.Tensor) -> torch.Tensor:
        return vmap(lambda v: jvp(lambda u: grad(objective)(u, keep), (w,), (v,))[1])(V)

    x_test = multishift_cg(matvec, g_test, [0.0], max_iter=20, tol=1e-12)[0][0]
    scores = (g_train @ x_test.T).numpy()  # [n_train, n_test]; positive: i lowers the test loss
    loo = np.zeros_like(scores)
    for i in range(n):
        k = keep.clone()
        k[i] = 0
        loo[i] = (losses(train(k, w, 6), Xt, yt) - losses(w, Xt, yt)).numpy()  # removing i: change in test loss
    predicted = scores / n  # first order: removing i raises the test loss by g_z^T H^-1 g_i / n
    big = np.abs(loo) > 0.01 * np.abs(loo).max()  # signs of negligible effects are second-order noise
    assert np.mean(np.sign(predicted[big]) == np.sign(loo[big])) >= 0.95
    for z in range(loo.shape[1]):
        assert spearmanr(predicted[:, z], loo[:, z]).statistic > 0.9


def test_curvature_products_are_exact_on_the_language_model(tiny: Benchmark) -> None:
    sim = _fit("grad-dot", tiny)
    model, params = sim.handle_.model, sim.handle_.params_at(4)
    engine = sim.engine_
    enc = encode(sim.handle_.tokenizer, tiny.train.prompts[:4], tiny.train.targets[:4], "output-tokens", 64)
    V = torch.randn(2, engine.dim, generator=torch.Generator().manual_seed(0))
    hess = Curvature(engine, params, enc, "hessian", 1 << 28)(V)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out = functional_call(model, leaves, (), {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask})
    from tdabench.methods.lm import token_losses

    loss = token_losses(out.logits, enc.input_ids, enc.loss_mask).mean()
    flat = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(leaves.values()), create_graph=True)])
    for r in range(2):
        hv = torch.cat([h.reshape(-1) for h in torch.autograd.grad(flat @ V[r], list(leaves.values()), retain_graph=True)])
        np.testing.assert_allclose(hess[r].numpy(), hv.numpy(), rtol=1e-3, atol=1e-5 * float(hv.abs().max()))
    gn = Curvature(engine, params, enc, "gauss-newton", 1 << 28)(V)
    assert float(V[0] @ gn[1]) == pytest.approx(float(V[1] @ gn[0]), rel=1e-4)  # symmetric
    assert float(V[0] @ gn[0]) > 0 and float(V[1] @ gn[1]) > 0  # positive semi-definite


# -- configs, registration and the runner -----------------------------------------------------
def test_methods_are_registered_with_honest_capabilities() -> None:
    methods = Context.create(progress=False).registry.methods()
    for name in ("tracin-cp", "grad-dot", "influence"):
        for full in (name, f"{name}-calibrated"):
            caps = methods[full].capabilities
            assert caps.needs_checkpoints and caps.needs_text and caps.unseen_test and caps.unseen_train
            assert not caps.text_trajectories
        assert methods[f"{name}-calibrated"].make_config().calibrate and not methods[name].make_config().calibrate


@pytest.mark.parametrize(("name", "overrides", "message"), [
    ("tracin-cp", {"params": "embeddings"}, "params"),
    ("tracin-cp", {"memory_mb": "9000"}, "memory_mb"),
    ("tracin-cp", {"projection_dim": "-1"}, "projection_dim"),
    ("influence", {"solver": "fisher"}, "projection_dim"),
    ("influence", {"damping_grid": "0.1/-1"}, "damping_grid"),
])
def test_bad_options_name_the_key(name: str, overrides: dict[str, str], message: str) -> None:
    spec = Context.create(progress=False).registry.method(name)
    with pytest.raises(ConfigError, match=message):
        spec.make_config(overrides)


def test_cli_runs_the_three_methods_end_to_end(tiny: Benchmark, tmp_path: Path) -> None:
    root = write_benchmark(tiny, tiny.root)  # model files already live under the root
    out = tmp_path / "results"
    code = main([
        "run", "--benchmark", str(root), "--method", "tracin-cp", "--method", "grad-dot-calibrated",
        "--method", "influence:solver=fisher,projection_dim=256", "--out", str(out), "--no-progress",
    ])
    assert code == 0
    results = read_results(out)
    assert {r.status for r in results} == {"ok"} and len(results) == 12
    assert all(np.isfinite(r.scores["mse_all_steps"].mean) for r in results)  # type: ignore[index]


test_conformance_tracin = conformance_test("tracin-cp", "tracin-cp-calibrated", "grad-dot", "grad-dot-calibrated", benchmark=lambda: _STATE["bench"])
test_conformance_influence = conformance_test("influence", "influence-calibrated", config={"solver": "fisher", "projection_dim": 128}, benchmark=lambda: _STATE["bench"])
test_conformance_influence_cg = conformance_test("influence", benchmark=lambda: _STATE["bench"])


@pytest.mark.slow
def test_influence_with_cg_runs_every_split(tiny: Benchmark) -> None:
    sim = _fit("influence-calibrated", tiny, cg_max_iter=4, hessian_examples=8)
    info = sim.fit_info()
    assert info["solver"] == "cg" and len(info["damping_candidates"]["4"]) == 4
    assert info["cg_residual_estimate"] is not None and np.isfinite(info["cg_residual_estimate"])
    for split in ("seen", "unseen-test", "unseen-train", "unseen-both"):
        q = split_view(tiny, split, "loss", seed=0).query
        pred = sim.simulate(q)
        assert pred.shape == q.shape and np.isfinite(pred).all()


@pytest.mark.parametrize("raw, calibrated, options", [
    ("tracin-cp", "tracin-cp-calibrated", {}),
    ("influence", "influence-calibrated", {"cg_max_iter": 4, "hessian_examples": 8}),
])
def test_score_tables_are_cached_and_shared_by_the_calibrated_form(tiny: Benchmark, tmp_path: Path, raw: str, calibrated: str, options: dict[str, object]) -> None:
    def fit(name: str, cache: Path | None) -> object:
        spec = Context.create(progress=False).registry.method(name)
        data = fit_data(tiny, "loss", seed=0, with_model=True, cache_dir=None if cache is None else str(cache), device="cpu")
        return spec.create(spec.make_config(options)).fit(data)

    def same_info(a: dict, b: dict) -> dict:
        timing = ("fit_seconds", "score_tables_cached", "cached_table_seconds")
        return {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}

    queries = [split_view(tiny, split, "loss", seed=0).query for split in ("seen", "unseen-test", "unseen-train")]
    cold, warm = fit(raw, None), fit(raw, tmp_path)
    n_ckpt = len(cold.fit_info()["checkpoint_steps"])
    assert warm.fit_info()["score_tables_cached"] == f"0 of {n_ckpt} checkpoints"
    assert warm.fit_info()["cached_table_seconds"] == 0
    for q in queries:  # the first pass stores the query tables too
        assert np.array_equal(cold.simulate(q), warm.simulate(q))
    again = fit(raw, tmp_path)
    assert again.fit_info()["score_tables_cached"] == f"{n_ckpt} of {n_ckpt} checkpoints"
    # what the tables cost when computed stays the reader's cost (the leaderboard's speed-up)
    assert again.fit_info()["cached_table_seconds"] > 0
    assert same_info(again.fit_info(), cold.fit_info())
    misses = again.cache_.misses
    for q in queries:
        assert np.array_equal(cold.simulate(q), again.simulate(q))
    assert again.cache_.misses == misses  # every query table came from the cache
    cal_cold, cal_warm = fit(calibrated, None), fit(calibrated, tmp_path)
    assert cal_warm.fit_info()["score_tables_cached"] == f"{n_ckpt} of {n_ckpt} checkpoints"  # the raw form's tables
    assert cal_warm.fit_info()["cached_table_seconds"] > 0
    assert same_info(cal_warm.fit_info(), cal_cold.fit_info())
    assert np.array_equal(cal_cold.simulate(queries[0]), cal_warm.simulate(queries[0]))
