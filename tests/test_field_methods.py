"""The field's methods through the field's libraries: kronfluence (EK-FAC, KFAC, diagonal) and traker (TRAK).

Registration and options here; the conformance suite on the tiny neox-0.2m benchmark of
test_gradients.py (the cheapest of each library in the default run, the rest marked slow);
the cross-checks against the libraries' own code in test_field_crosscheck.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tdabench.data import Benchmark
from tdabench.errors import ConfigError
from tdabench.run.context import Context
from tdabench.run.views import fit_data
from tdabench.testing import conformance_test
from test_gradients import tiny_benchmark

_STATE: dict[str, Benchmark] = {}
KRONFLUENCE = ("ekfac-influence", "kfac-influence", "diagonal-influence")
#: Small enough for the default test run: traker's projection and ensemble shrunk.
TRAK_FAST = {"proj_dim": 16, "projector_block": 8, "max_checkpoints": 2}


def _bench() -> Benchmark:
    if "bench" not in _STATE:
        import tempfile
        from pathlib import Path

        _STATE["bench"] = tiny_benchmark(Path(tempfile.mkdtemp(prefix="tdabench-field-")))
    return _STATE["bench"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_families_are_registered_with_their_residual_forms() -> None:
    methods = Context.create(progress=False).registry.methods()
    names = {f"{m}{s}" for m in KRONFLUENCE for s in ("", "-calibrated", "-residual")} | {"trak", "trak-residual"}
    assert names <= set(methods)
    for name in names:
        caps = methods[name].capabilities
        assert caps.needs_checkpoints and caps.self_influence and caps.unseen_test and caps.unseen_train and not caps.text_trajectories
        assert caps.any_length == (not name.endswith("-residual"))
        assert methods[name].distribution.startswith("tdabench")


@pytest.mark.parametrize(("name", "overrides", "message"), [
    ("ekfac-influence", {"params": "all"}, "nn.Linear modules only"),
    ("kfac-influence", {"projection_dim": "64"}, "projection_dim"),
    ("trak", {"projection_dim": "64"}, "proj_dim"),
    ("trak", {"params": "everything"}, "params"),
])
def test_bad_options_say_the_fix(name: str, overrides: dict[str, str], message: str) -> None:
    spec = Context.create(progress=False).registry.method(name)
    with pytest.raises((ConfigError, ValueError), match=message):
        spec.make_config(overrides)


def test_every_parameter_set_is_served_by_the_hand_written_methods() -> None:
    spec = Context.create(progress=False).registry.method("grad-dot")
    data = fit_data(_bench(), "loss", seed=0, with_model=True, cache_dir=None, device="cpu")
    sizes = {p: spec.create(spec.make_config({"params": p})).fit(data).fit_info()["n_params"] for p in ("all", "linear", "last-layer")}
    assert sizes["all"] > sizes["linear"] > sizes["last-layer"] > 0


def test_damping_is_chosen_on_the_validation_runs_only() -> None:
    """Corrupting the evaluation runs' trajectories changes neither the damping nor the predictions."""
    bench = _bench()
    spec = Context.create(progress=False).registry.method("diagonal-influence")
    data = fit_data(bench, "loss", seed=0, with_model=True, cache_dir=None, device="cpu")
    sim: Any = spec.create(spec.make_config()).fit(data)
    info = sim.fit_info()
    assert len(info["damping_candidates"]["4"]) == len(spec.make_config().damping_grid)
    assert info["damping"]["4"] in info["damping_candidates"]["4"]
    assert len(info["variant_val_mse"]) == len(spec.make_config().damping_grid)
    assert np.all(np.isfinite(sim.self_influence(bench.train.ids[:4])))


def test_a_fit_from_cached_factors_and_tables_is_charged_for_them(tmp_path: Path) -> None:
    """The residual form reads the raw form's factors and tables: their cost stays in its fit info,
    so the leaderboard never shows it as thousands of times cheaper than retraining."""
    bench = _bench()
    registry = Context.create(progress=False).registry
    data = fit_data(bench, "loss", seed=0, with_model=True, cache_dir=str(tmp_path), device="cpu")
    raw: Any = registry.method("diagonal-influence").create(registry.method("diagonal-influence").make_config()).fit(data)
    assert raw.fit_info()["cached_table_seconds"] == 0  # it computed everything itself
    spec = registry.method("diagonal-influence-calibrated")
    cal: Any = spec.create(spec.make_config()).fit(data)
    assert cal.fit_info()["score_tables_cached"].startswith("1 of")
    assert cal.fit_info()["cached_table_seconds"] > 0


test_conformance_diagonal = conformance_test("diagonal-influence", benchmark=_bench)
test_conformance_kronfluence_slow = pytest.mark.slow(conformance_test("ekfac-influence", "kfac-influence", "ekfac-influence-residual", benchmark=_bench))
test_conformance_trak_slow = pytest.mark.slow(conformance_test("trak", "trak-residual", config=TRAK_FAST, benchmark=_bench))


def test_trak_fits_simulates_every_split_and_ranks_itself() -> None:
    """The default run's TRAK check (its conformance suite is slow): fit, an unseen query, self-influence."""
    from tdabench.run.views import split_view

    bench = _bench()
    spec = Context.create(progress=False).registry.method("trak")
    data = fit_data(bench, "loss", seed=0, with_model=True, cache_dir=None, device="cpu")
    sim: Any = spec.create(spec.make_config(TRAK_FAST)).fit(data)
    info = sim.fit_info()
    assert info["ensemble_steps"] == [0, 4] and info["damping"]["4"] in info["damping_candidates"]["4"]
    query = split_view(bench, "unseen-train", "loss", seed=0).query
    pred = sim.simulate(query)
    assert pred.shape == query.shape and np.all(np.isfinite(pred)) and np.array_equal(pred[:, :, 0], query.initial)
    assert np.all(np.isfinite(sim.self_influence(bench.train.ids[:4])))
