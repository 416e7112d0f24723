"""Speed of the gradient methods (run: pytest tests/benchmarks/test_bench_gradients.py --benchmark-only).

Targets (issue: gradient-based methods), on the built-in neox-1m architecture (1.0M parameters,
bank tokenizer, sentiment examples of ~30-40 tokens), with one torch thread (the machine's two
cores are shared; threads fighting over them make torch many times slower):

* per-example gradient throughput in examples per second (``extra_info["examples_per_s"]``);
* TracIn-CP for 200 training x 128 test examples x 10 checkpoints (base model + 9 files), the
  whole ``fit`` through the method API, under 60 s;
* captum's ``TracInCP`` computing the same scores in the same process, checked equal; the
  ratio of its time to ours is in ``extra_info["captum_over_tdabench"]``. captum holds every
  test example's full gradient at every checkpoint, so it is run on chunks of 64 test
  examples to stay under 8 GB (it then recomputes training gradients per chunk). captum is a
  benchmark-only extra (``pip install -c constraints.txt -e ".[bench]"``); without it the
  comparison is skipped.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import tdabench
from tdabench.run.context import Context
from tdabench.data import Benchmark, BenchmarkMeta, ExampleSet, ModelAccess, Run, SplitSpec, Trajectory
from tdabench.methods.lm import Encoded, encode, token_losses
from tdabench.recorder.models import fresh_model
from tdabench.recorder.tokenizer import bank_tokenizer
from tdabench.simulator import FitData
from tdabench.run.views import fit_data
from tdabench_plugins.gradients._per_example import GradientEngine, selected_names

TASKS = Path(tdabench.__file__).resolve().parent / "bank" / "tasks"
N_TRAIN, N_TEST, N_FILES, BATCH = 200, 128, 9, 4
#: captum keeps the full gradient of every test example at every checkpoint (128 x 10 x 4 MB =
#: 5 GB here) plus a training batch's: under 8 GB it must take the test examples in chunks,
#: and then recomputes the training gradients for each chunk.
CAPTUM_BATCH, CAPTUM_TEST_CHUNK = 25, 64


def _examples(split: str, n: int, first_id: int) -> ExampleSet:
    with open(TASKS / "sentiment" / f"{split}.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh][:n]
    prompts = tuple(r["context"] for r in rows)
    texts = tuple(r["input"] for r in rows)
    return ExampleSet(np.arange(first_id, first_id + n), prompts, tuple(t[len(p) :] for t, p in zip(texts, prompts)), texts)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> dict[str, object]:
    """A neox-1m base model and 9 checkpoint files (seeded perturbations of it), and a
    benchmark whose 4 fit runs each use all 200 training examples once, lr 1."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("bench-grad")
    tok = bank_tokenizer()
    model = fresh_model("neox-1m", len(tok), seed=0)
    base = root / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    g = torch.Generator().manual_seed(1)
    files = {}
    for k in range(1, N_FILES + 1):
        state = {n: (v + 0.01 * k * torch.randn(v.shape, generator=g)).contiguous() for n, v in model.state_dict().items()}
        files[5 * k] = root / f"ckpt-{5 * k}.safetensors"
        save_file(state, str(files[5 * k]))
    train, test = _examples("train", N_TRAIN, 0), _examples("test", N_TEST, 1000)
    T = N_TRAIN // BATCH
    rng = np.random.default_rng(0)
    runs = tuple(
        Run(f"run{r}", r, rng.permutation(N_TRAIN).reshape(T, BATCH), np.ones(T), {"loss": Trajectory(np.arange(T + 1), rng.uniform(1, 2, (N_TEST, T + 1)))})
        for r in range(6)
    )
    split = SplitSpec(("run0", "run1", "run2", "run3"), ("run4",), ("run5",))
    meta = BenchmarkMeta(model="neox-1m", task="sentiment", setting="ft", loss_type="output-tokens")
    bench = Benchmark("bench/ft/neox-1m/sentiment", meta, train, test, runs, split, root, ModelAccess(base, {"run0": files}, "output-tokens"))
    data = fit_data(bench, "loss", seed=0, with_model=True, cache_dir=None, device="cpu")
    return {"bench": bench, "data": data, "base": base, "files": files, "tok": tok}


def test_per_example_gradient_throughput(benchmark, setup: dict[str, object]) -> None:  # noqa: ANN001
    tok, data = setup["tok"], setup["data"]
    model = fresh_model("neox-1m", len(tok), seed=0).eval()  # type: ignore[arg-type]
    params = {k: v.detach() for k, v in model.named_parameters()}
    train: ExampleSet = data.train  # type: ignore[attr-defined]
    enc = encode(tok, train.prompts[:64], train.targets[:64], "output-tokens", 256)  # type: ignore[arg-type]
    engine = GradientEngine(model, selected_names(model, "all"), projector=None, memory_bytes=1 << 30)
    out = torch.empty(len(enc), engine.dim)
    benchmark.pedantic(engine.grads, args=(params, enc, out), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["n_params"] = engine.n_params
    benchmark.extra_info["examples_per_s"] = round(len(enc) / benchmark.stats.stats.mean, 1)
    assert torch.isfinite(out).all()


def _fit_tracin(data: FitData) -> object:
    spec = Context.create(progress=False).registry.method("tracin-cp")
    return spec.create().fit(data)


def test_tracin_200_train_128_test_10_checkpoints(benchmark, setup: dict[str, object]) -> None:  # noqa: ANN001
    sim = benchmark.pedantic(_fit_tracin, args=(setup["data"],), rounds=1, iterations=1)
    assert len(sim.steps_) == 10 and sim.scores_.shape == (10, N_TRAIN, N_TEST)  # type: ignore[attr-defined]
    benchmark.extra_info["seconds"] = round(benchmark.stats.stats.mean, 2)


class _LossModel(torch.nn.Module):
    """captum calls ``model(*inputs)``: this returns the recorded per-example loss directly."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return token_losses(out.logits, input_ids, loss_mask)


def test_captum_tracincp_same_scores(benchmark, setup: dict[str, object]) -> None:  # noqa: ANN001
    pytest.importorskip("captum")
    from captum.influence import TracInCP
    data: FitData = setup["data"]  # type: ignore[assignment]
    t0 = time.perf_counter()
    ours = _fit_tracin(data)
    ours_s = time.perf_counter() - t0
    tok = setup["tok"]
    enc_tr: Encoded = encode(tok, data.train.prompts, data.train.targets, "output-tokens", 256)  # type: ignore[arg-type]
    enc_te: Encoded = encode(tok, data.test.prompts, data.test.targets, "output-tokens", 256)  # type: ignore[arg-type]
    train_ds = torch.utils.data.TensorDataset(enc_tr.input_ids, enc_tr.attention_mask, enc_tr.loss_mask, torch.zeros(len(enc_tr)))
    handle = ours.handle_  # type: ignore[attr-defined]
    wrapped = _LossModel(copy.deepcopy(handle.model))
    paths = [str(step) for step in handle.steps]  # captum passes these to the load function

    def load(model: torch.nn.Module, step: str) -> float:
        model.lm.load_state_dict(handle.params_at(int(step)), strict=False)  # type: ignore[union-attr, operator]
        return 1.0  # the recorded lr of every step is 1

    def captum_scores() -> torch.Tensor:
        for p in wrapped.parameters():
            p.requires_grad_(True)
        tracin = TracInCP(wrapped, train_ds, paths, checkpoints_load_func=load, loss_fn=lambda out, _: out, batch_size=CAPTUM_BATCH, sample_wise_grads_per_batch=False)
        scores = []
        for lo in range(0, len(enc_te), CAPTUM_TEST_CHUNK):
            part = enc_te.rows(np.arange(lo, min(len(enc_te), lo + CAPTUM_TEST_CHUNK)))
            scores.append(tracin.influence((part.input_ids, part.attention_mask, part.loss_mask, torch.zeros(len(part))), k=None))
        for p in wrapped.parameters():
            p.requires_grad_(False)
        return torch.cat(scores)  # [n_test, n_train]

    theirs = benchmark.pedantic(captum_scores, rounds=1, iterations=1)
    mine = ours.pairwise_scores()  # type: ignore[attr-defined]  # [n_train, n_test]
    np.testing.assert_allclose(mine.T, theirs.double().numpy(), rtol=1e-3, atol=1e-4 * float(np.abs(mine).max()))
    benchmark.extra_info["tdabench_s"] = round(ours_s, 2)
    benchmark.extra_info["captum_over_tdabench"] = round(benchmark.stats.stats.mean / ours_s, 2)


@pytest.mark.parametrize("config", [{}, {"solver": "fisher", "projection_dim": 4096}], ids=["cg", "fisher-4096"])
def test_influence_200_train_128_test(benchmark, setup: dict[str, object], config: dict[str, object]) -> None:  # noqa: ANN001
    """Influence at the final checkpoint: default CG (Gauss-Newton over 16 training examples,
    10 Lanczos steps per test example, 4 dampings from one solve) and the projected-Fisher path."""
    spec = Context.create(progress=False).registry.method("influence")

    def fit() -> object:
        return spec.create(spec.make_config(config)).fit(setup["data"])  # type: ignore[arg-type]

    sim = benchmark.pedantic(fit, rounds=1, iterations=1)
    info = sim.fit_info()  # type: ignore[attr-defined]
    benchmark.extra_info.update(seconds=round(benchmark.stats.stats.mean, 2), damping=info["damping"], cg_residual_estimate=info["cg_residual_estimate"])
    assert np.isfinite(sim.scores_).all()  # type: ignore[attr-defined]
