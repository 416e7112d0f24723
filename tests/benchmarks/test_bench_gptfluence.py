"""GPTfluence performance: embedding, fit at GPTDynamics size, rollout, vectorized vs per-transition.

Run with ``python -m pytest tests/benchmarks/test_bench_gptfluence.py --benchmark-only``.
Targets (docs/methods.md, "GPTfluence"): fit < 60 s, rollout of 5 runs < 1 s on a 2-core CPU.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tdabench.data import Benchmark
from tdabench.sources.synthetic import simfluence_benchmark
from tdabench.run.views import fit_data, split_view
from tdabench_plugins.gptfluence import GPTfluence, GPTfluenceConfig, torch_threads
from tdabench_plugins.encoder import TextEncoder
from tdabench_plugins.gptfluence._nets import FactorNet, build_net
from tdabench_plugins.gptfluence._train import RunSet, TrainSettings, _block_loss, _history, constant_factors, fit_factors

WORDS = ("river", "market", "theory", "engine", "garden", "protein", "violin", "glacier", "senate", "harbor",
         "lantern", "comet", "algebra", "canyon", "novel", "orbit", "pepper", "saddle", "tunnel", "walnut")


def _texts(n: int, seed: int = 0) -> list[str]:
    """n distinct sentences of varied length (a stand-in for task examples)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        body = " ".join(rng.choice(WORDS, size=int(rng.integers(8, 60))))
        out.append(f"Example {i}: {body}. Is this about {WORDS[i % len(WORDS)]}? Answer: {'yes' if i % 2 else 'no'}")
    return out


@pytest.fixture(scope="module")
def gd_bench() -> Benchmark:
    """GPTDynamics fine-tuning size: 25 fit runs x 96 steps x 128 seen test examples, 200 training examples."""
    bench, _ = simfluence_benchmark(n_train=200, n_test=160, n_runs=32, sample=128, batch=4, epochs=3, noise=0.002, seed=0)
    return bench


def test_embed_1000_examples(benchmark: pytest.FixtureRequest) -> None:
    texts = _texts(1000)

    def embed() -> np.ndarray:
        with torch_threads(GPTfluenceConfig().threads):  # as during a fit
            return TextEncoder("all-MiniLM-L6-v2", "first", 512, 64, None).embed(texts)  # no cache: encodes all

    emb = benchmark.pedantic(embed, rounds=1, iterations=1)
    assert emb.shape == (1000, 384) and np.isfinite(emb).all()


def test_fit_gptdynamics_size(benchmark: pytest.FixtureRequest, gd_bench: Benchmark, tmp_path: Path) -> None:
    data = fit_data(gd_bench, "loss", seed=0, with_model=False, cache_dir=str(tmp_path / "cold"), device="cpu")
    assert data.values.shape == (25, 128, 96) and len(data.train) <= 200
    sim = benchmark.pedantic(lambda: GPTfluence(GPTfluenceConfig()).fit(data), rounds=1, iterations=1)  # cold cache
    info = sim.fit_info()
    benchmark.extra_info.update({k: info[k] for k in ("encode_s", "train_s", "steps", "best_epoch", "epochs_run")})
    assert math.isfinite(info["best_select_mse"])


def test_rollout_5_runs(benchmark: pytest.FixtureRequest, gd_bench: Benchmark, tmp_path: Path) -> None:
    data = fit_data(gd_bench, "loss", seed=0, with_model=False, cache_dir=str(tmp_path), device="cpu")
    sim = GPTfluence(GPTfluenceConfig(epochs=1)).fit(data)
    query = split_view(gd_bench, "seen", "loss", seed=0).query
    assert query.shape == (5, 128, 96)
    pred = benchmark(sim.simulate, query)
    assert np.isfinite(pred).all()


# -- vectorized training against a per-transition loop of the same model ------------------
def _per_transition_steps(net: FactorNet, h_train: torch.Tensor, h_test: torch.Tensor, fit: RunSet,
                          triples: np.ndarray, batch: int, opt: torch.optim.Optimizer) -> None:
    """The unvectorized loop: one forward per (run, transition, test example), a step per batch."""
    for start in range(0, len(triples), batch):
        opt.zero_grad(set_to_none=True)
        loss = torch.zeros(())
        for r, t, z in triples[start : start + batch]:
            ids = fit.pos[r, t]
            tr, te = net.represent(h_train[ids.clamp_min(0)], h_test[z : z + 1])
            local = torch.where(ids < 0, -1, torch.arange(len(ids)))
            f = net.grid(tr, te, local)[0]  # [F]
            y = f[0] * fit.values[r, z, t] + f[1]
            loss = loss + (y - fit.values[r, z, t + 1]) ** 2
        (loss / batch).backward()
        opt.step()


def test_vectorized_training_speedup(benchmark: pytest.FixtureRequest) -> None:
    with torch_threads(GPTfluenceConfig().threads):  # both paths under the method's setting
        _speedup(benchmark)


def _speedup(benchmark: pytest.FixtureRequest) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    R, C, n_train, n_test, d = 25, 95, 200, 128, 384
    h_train, h_test = torch.randn(n_train, d), torch.randn(n_test, d)
    fit = RunSet(torch.as_tensor(rng.integers(0, n_train, size=(R, C, 4))),
                 torch.as_tensor(rng.uniform(1, 2, size=(R, n_test, C + 1)), dtype=torch.float32))
    cfg = GPTfluenceConfig()

    def make() -> tuple[FactorNet, torch.optim.Optimizer]:
        net = build_net("dot", d, cfg.width, 1, torch.Generator().manual_seed(0))
        net.init_constant(h_train, h_test, constant_factors(fit, 1), cfg.init_scale)
        return net, torch.optim.AdamW(net.lr_groups(cfg.lr), lr=cfg.lr)

    # Vectorized: one epoch over all R * C * n_test triples (validation rollout excluded).
    settings = TrainSettings(lr=cfg.lr, batch_size=cfg.batch_size, epochs=1, warmup_steps=cfg.warmup_steps, patience=1)
    net, _ = make()
    benchmark.pedantic(lambda: fit_factors(net, h_train, h_test, fit, None, settings), rounds=1, iterations=1)
    vec_per_triple = benchmark.stats.stats.mean / (R * C * n_test)
    # Per-transition: the same model, batches of 128 triples (published), on a sample of triples.
    net, opt = make()
    n_slow = 1024
    triples = np.stack([rng.integers(0, R, n_slow), rng.integers(0, C, n_slow), rng.integers(0, n_test, n_slow)], 1)
    t0 = time.perf_counter()
    _per_transition_steps(net, h_train, h_test, fit, triples, 128, opt)
    slow_per_triple = (time.perf_counter() - t0) / n_slow
    speedup = slow_per_triple / vec_per_triple
    benchmark.extra_info.update({
        "vectorized_us_per_triple": round(vec_per_triple * 1e6, 2),
        "per_transition_us_per_triple": round(slow_per_triple * 1e6, 1),
        "speedup": round(speedup, 1),
    })
    print(f"\nvectorized {vec_per_triple * 1e6:.2f} us/triple, per-transition {slow_per_triple * 1e6:.1f} us/triple: {speedup:.0f}x")
    assert speedup > 1
    # The two paths compute the same loss on the same triples.
    net, _ = make()
    hist = _history(fit.values, 1, 1)
    r, c, z = torch.tensor([3]), torch.tensor([7]), torch.tensor([5])
    with torch.no_grad():
        vec = float(_block_loss(net, h_train, h_test, fit, hist, r, c, z, 1))
        ids = fit.pos[3, 7]
        tr, te = net.represent(h_train[ids], h_test[5:6])
        f = net.grid(tr, te, torch.arange(len(ids)))[0]
        one = float((f[0] * fit.values[3, 5, 7] + f[1] - fit.values[3, 5, 8]) ** 2)
    assert vec == pytest.approx(one, rel=1e-5)
