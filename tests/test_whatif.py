"""``tdabench simulate``: a what-if on a user's plan, checked by training on it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tdabench.cli import main
from tdabench.run.context import Context
from tdabench.data import Benchmark
from tdabench.errors import DataError
from tdabench.formats.gptdynamics_write import write_batches
from tdabench.run.runner import choose_methods
from tdabench.simulator import Capabilities
from tdabench.run.views import fit_data
from tdabench.run.simulate import check_servable, read_plan, simulate_plan

BENCH = "builtin/ft/neox-1m/sentiment"
PLANS = Path(__file__).resolve().parents[1] / "docs" / "examples" / "plans"


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.create(progress=False)


@pytest.fixture(scope="module")
def bench(ctx: Context) -> Benchmark:
    return ctx.registry.benchmarks(ctx)[BENCH].load()


def test_the_example_plans_are_plans_of_the_default_benchmark(bench: Benchmark) -> None:
    for name in ("curriculum-by-label.json", "drop-negative-review.json"):
        batches = read_plan(PLANS / name, bench)
        assert batches.shape == (96, 4) and (batches >= 0).all()


def test_bad_plans_name_the_file_line_and_field(bench: Benchmark, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    write_batches(plan, np.array([[0, 1, 2, 3], [4, 5, 999999, 7]]))
    with pytest.raises(DataError, match=r"plan\.json:2: field 'samples_id': training id 999999 is not an example"):
        read_plan(plan, bench)
    plan.write_text('{"step": 1, "samples_id": [0, 1]}\n{"step": 2, "samples_id": [0, "x"]}\n')
    with pytest.raises(DataError, match=r"plan\.json:2: .*samples_id"):
        read_plan(plan, bench)
    plan.write_text('{"step": 1, "samples_id": [0, 1]}\nnot json\n')
    with pytest.raises(DataError, match=r"plan\.json:2"):
        read_plan(plan, bench)


def test_an_id_the_method_cannot_serve_is_refused_at_its_line(ctx: Context, bench: Benchmark, tmp_path: Path) -> None:
    (choice,) = choose_methods(ctx, ["simfluence-linear"])
    # A method that learns each example's factors only from the runs that used it, and says so.
    choice = dataclasses.replace(choice, spec=dataclasses.replace(choice.spec, capabilities=Capabilities(unseen_train=False)))
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    in_fit = np.unique(data.runs.batches)
    outside = np.setdiff1d(bench.train.ids, in_fit)[0]  # a pool-B example: in no fit run
    plan = tmp_path / "plan.json"
    write_batches(plan, np.array([[in_fit[1], in_fit[2]], [in_fit[3], outside]]))
    with pytest.raises(DataError, match=rf"plan\.json:2: field 'samples_id': training id {outside} is in no fit run"):
        check_servable(plan, read_plan(plan, bench), data, choice)


def test_verify_retrains_exactly_the_recorded_run_and_a_rerun_reuses(ctx: Context, tmp_path: Path) -> None:
    # A benchmark recorded by this version of the recorder (the uniform tier predates it: see docs/benchmarks.md).
    bench = ctx.registry.benchmarks(ctx)["builtin/cf/ft/neox-1m/sentiment-drop-group"].load()
    run = bench.run(bench.split.eval_runs[0])
    plan = tmp_path / "eval-run.json"
    write_batches(plan, run.batches)
    (choice,) = choose_methods(ctx, ["simfluence-linear"])
    ids = bench.test.ids[:16]
    got = simulate_plan(bench, choice, plan, test_ids=ids, verify=True, out=tmp_path / "out", seed=0)
    recorded = run.trajectories["loss"].values[bench.test.positions(ids)]
    # Training on an evaluation run's own batches reproduces its recorded losses: runs are deterministic.
    np.testing.assert_allclose(got.actual, recorded, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got.predicted[:, 0], recorded[:, 0])  # from the benchmark's initial values
    doc = json.loads((tmp_path / "out" / "whatif.json").read_text())
    assert doc["schema"] == "tdabench.whatif/2" and doc["key"] == got.record.key and doc["status"] == "ok"
    assert doc["verified"] and doc["scores"]["mse_all_steps"]["n"] == 16 and "mse_all_steps" in doc["reference_scores"]
    assert doc["provenance"]["versions"]["tdabench"] and doc["method_version"] == choice.spec.version
    assert doc["plan"] == "eval-run.json" and str(tmp_path) not in json.dumps(doc)  # no absolute path of this machine
    rows = (tmp_path / "out" / "whatif.csv").read_text().splitlines()
    assert rows[0] == "test_id,step,predicted,actual,zero_line" and len(rows) == 1 + 16 * len(run.trajectories["loss"].steps)
    assert (tmp_path / "out" / "whatif.png").read_bytes()[:4] == b"\x89PNG"
    again = simulate_plan(bench, choice, plan, test_ids=ids, verify=True, out=tmp_path / "out", seed=0)
    assert again.record == got.record and np.array_equal(again.actual, got.actual)


def test_a_benchmark_without_a_base_model_cannot_verify(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tdabench.formats.gptdynamics_load import load_benchmarks

    b = load_benchmarks(synthetic_dir)[0]
    plan = tmp_path / "plan.json"
    write_batches(plan, b.run(b.split.eval_runs[0]).batches)
    code = main(["simulate", "--benchmark", str(synthetic_dir), "--method", "simfluence-linear", "--plan", str(plan), "--verify",
                 "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and "cannot be retrained" in capsys.readouterr().err


def test_cli_predicts_a_plan_of_another_length(tmp_path: Path, capsys: pytest.CaptureFixture[str], bench: Benchmark) -> None:
    plan = tmp_path / "short.json"
    write_batches(plan, read_plan(PLANS / "drop-negative-review.json", bench)[:40])
    code = main(["simulate", "--benchmark", BENCH, "--method", "simfluence-linear", "--plan", str(plan), "--test-ids", "0", "5", "9",
                 "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "o" / "whatif.json").read_text())
    assert doc["steps"] == list(range(41)) and doc["test_ids"] == [0, 5, 9] and not doc["verified"]
    with np.load(tmp_path / "o" / "whatif.npz") as z:
        assert z["predicted"].shape == (3, 41) and "zero_line" not in z.files  # no batch-blind answer for another length
    code = main(["simulate", "--benchmark", BENCH, "--method", "mean-trajectory", "--plan", str(plan), "--out", str(tmp_path / "m")])
    assert code == 2 and "only runs as long as the fit runs" in capsys.readouterr().err
