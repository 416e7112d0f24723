"""tdabench against the field's own code, on the smallest model (neox-0.2m) and tiny slices.

* kronfluence's ``identity`` strategy equals tdabench's ``grad-dot`` on the linear layers;
* dattri's TracIn equals ``tracin-cp``'s table at one checkpoint;
* dattri's ``lds`` equals tdabench's ``lds_final`` on the same arrays;
* dattri's ``mislabel_detection_auc`` equals ours on continuous scores (ties: ours takes average ranks).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tdabench.data import Benchmark
from tdabench.methods.lm import token_losses
from tdabench.results.mislabel import detection
from tdabench.run.context import Context
from tdabench.run.views import fit_data
from tdabench.scoring import score
from test_gradients import tiny_benchmark

_STATE: dict[str, Benchmark] = {}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Benchmark]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    if "bench" not in _STATE:
        _STATE["bench"] = tiny_benchmark(tmp_path_factory.mktemp("tiny-field"))
    yield _STATE["bench"]
    torch.set_num_threads(before)


def _fit(name: str, bench: Benchmark, **config: object) -> Any:
    spec = Context.create(progress=False).registry.method(name)
    return spec.create(spec.make_config(config)).fit(fit_data(bench, "loss", seed=0, with_model=True, cache_dir=None, device="cpu"))


def test_kronfluence_identity_equals_grad_dot_on_linear_layers(tiny: Benchmark) -> None:
    from tdabench_plugins.kronfluence._config import KronfluenceConfig
    from tdabench_plugins.kronfluence._simulator import KronfluenceInfluence

    data = fit_data(tiny, "loss", seed=0, with_model=True, cache_dir=None, device="cpu")
    ident = KronfluenceInfluence("identity", KronfluenceConfig(params="linear")).fit(data)
    ours = _fit("grad-dot", tiny, params="linear")
    a, b = ident.scores_[0], ours.scores_[0]  # [n_train, n_test] at the final checkpoint
    assert a.shape == b.shape and np.abs(b).max() > 0
    assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()
    assert ident.fit_info()["n_params"] == ours.fit_info()["n_params"] < sum(p.numel() for p in ours.handle_.model.parameters())


def test_dattri_tracin_equals_tracin_cp_at_one_checkpoint(tiny: Benchmark) -> None:
    from dattri.algorithm.tracin import TracInAttributor
    from dattri.task import AttributionTask

    ours = _fit("tracin-cp", tiny)
    step = ours.steps_[-1]
    model = copy.deepcopy(ours.handle_.model).requires_grad_(True)  # dattri differentiates the parameters that require it
    state = {**dict(model.state_dict()), **ours.handle_.params_at(step)}
    enc_train = _encoded(ours, ours.train_)
    enc_test = _encoded(ours, ours.test_)

    def loss(params: dict[str, torch.Tensor], row: tuple[torch.Tensor, ...]) -> torch.Tensor:
        ids, am, lm = row
        out = torch.func.functional_call(model, params, args=(), kwargs={"input_ids": ids[None], "attention_mask": am[None], "use_cache": False})
        return token_losses(out.logits, ids[None], lm[None])[0]

    task = AttributionTask(loss_func=loss, model=model, checkpoints=[state])
    attributor = TracInAttributor(task=task, weight_list=torch.ones(1), normalized_grad=False, device="cpu")
    attributor.projector_kwargs = None  # exact gradients (dattri's default projects to 512 dimensions)
    loader = lambda e: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(e.input_ids, e.attention_mask, e.loss_mask), batch_size=8)  # noqa: E731
    theirs = attributor.attribute(loader(enc_train), loader(enc_test)).double().numpy()
    table = ours.scores_[-1]  # [n_train, n_test] at the final checkpoint
    # Both sides sum float32 gradients of ~10^6 parameters in different orders (dattri per
    # batch of 8, ours per example): they agree to ~1e-4 of the largest score, so 1e-3 bounds it.
    assert np.abs(theirs - table).max() <= 1e-3 * np.abs(table).max()


def _encoded(sim: Any, examples: Any) -> Any:
    from tdabench_plugins.gradients._model import encode_examples

    return encode_examples(sim.handle_, examples, sim.config.max_length)


def test_dattri_lds_equals_lds_final_on_the_same_arrays() -> None:
    from dattri.metric import lds

    rng = np.random.default_rng(0)
    n_train, n_test, m, k = 40, 12, 30, 20
    scores = rng.normal(size=(n_train, n_test))  # positive: training on i lowers the loss of z
    subsets = np.stack([rng.choice(n_train, size=k, replace=False) for _ in range(m)])
    losses = -scores[subsets].sum(1) + rng.normal(scale=3.0, size=(m, n_test))  # [m, n_test] "retrained" losses
    theirs = lds(torch.as_tensor(scores), (torch.as_tensor(-losses), torch.as_tensor(subsets)))[0].numpy()
    # tdabench: each subset is an evaluation run whose final value the additive model predicts
    pred = np.zeros((m, n_test, 2))
    true = np.zeros((m, n_test, 2))
    pred[:, :, 1] = -scores[subsets].sum(1)
    true[:, :, 1] = losses
    ours = score(pred, true)["lds_final"]
    assert abs(ours.mean - float(np.mean(theirs))) < 1e-12


def test_dattri_mislabel_auc_equals_ours_on_continuous_scores() -> None:
    from dattri.metric import mislabel_detection_auc

    rng = np.random.default_rng(1)
    for _ in range(5):
        flipped = rng.random(60) < 0.4
        suspicion = rng.normal(size=60) + 1.5 * flipped
        theirs = float(mislabel_detection_auc(torch.as_tensor(suspicion), torch.as_tensor(flipped))[0])
        _, _, ours = detection(suspicion, flipped)
        assert abs(ours - theirs) < 1e-6


def test_tied_suspicions_take_average_ranks() -> None:
    """With ties, an inspection order is arbitrary; the AUC takes every order of a tied group at once
    (average ranks, the Mann-Whitney statistic), so it no longer depends on the examples' positions."""
    flipped = np.array([True, False, True, False, False, True])
    suspicion = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 2.0])
    _, _, auc = detection(suspicion, flipped)
    _, _, swapped = detection(suspicion[::-1], flipped[::-1])
    # pairs (flipped, clean) ordered right: 2 vs all 3 clean = 3; 1.0 vs 1.0 tie = 0.5, vs two 0.0 = 2; 0.0 vs 0.0 ties = 1
    assert auc == swapped == pytest.approx((3 + 0.5 + 2 + 1) / 9)
