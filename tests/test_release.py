"""GPTDynamics as released: every part of a download loads, and is scored by the published protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gdrelease import BROKEN_TASK, DEBUG, FT, write_release_tree
from tdabench.cli import main
from tdabench.formats.gptdynamics_load import load_benchmarks, scan_benchmarks
from tdabench.formats.gptdynamics_release import EVAL_SEEDS, FLAN_TASKS

IDS = {
    "gptdynamics/ft/pythia-410m/rte", "gptdynamics/ft/pythia-410m/sst2", "gptdynamics/ft/pythia-410m/webnlg",
    "gptdynamics/ft/pythia-410m/wmt16_de_en", "gptdynamics/ft/pythia-410m/boolq", "gptdynamics/ft/pythia-410m/sst2-dataset-debug-is-mislabelled",
    "gptdynamics/it/pythia-410m/flan", "gptdynamics/it/pythia-410m/flan+bleu-rougeL",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_tree(tmp_path_factory.mktemp("release") / "gd")


@pytest.fixture(scope="module")
def benches(tree: Path) -> dict[str, object]:
    return {b.id: b for b in load_benchmarks(tree)}


def test_every_part_loads_with_one_data_dir(tree: Path, benches: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert set(benches) == IDS
    assert main(["list", "benchmarks", "--data-dir", str(tree)]) == 0
    out = capsys.readouterr().out
    assert all(i in out for i in IDS)


def test_example_files_are_picked_by_role(benches: dict) -> None:
    sst2, debug = benches["gptdynamics/ft/pythia-410m/sst2"], benches["gptdynamics/ft/pythia-410m/sst2-dataset-debug-is-mislabelled"]
    assert sst2.train.texts[0].startswith("sst2 train example") and len(sst2.train) == 200
    assert debug.train.texts[0].startswith("sst2 debug train example") and debug.test.texts[0].startswith("sst2 debug eval")
    flan = benches["gptdynamics/it/pythia-410m/flan"]
    assert len(flan.train) >= 768 + 200 and flan.train.texts[-1].startswith("flan train example")  # flan_ood ids 1200+ resolved


def test_out_of_distribution_runs_are_their_tasks_unseen_train_runs(benches: dict) -> None:
    for task in ("rte", "webnlg"):
        b = benches[f"gptdynamics/ft/pythia-410m/{task}"]
        unseen = [b.run(n) for n in b.split.unseen_train_runs]
        assert len(unseen) == 3 and all(r.settings["task"] == f"{task}-ood" for r in unseen)
        assert all(r.train_ids().min() >= 200 for r in unseen)
    flan = benches["gptdynamics/it/pythia-410m/flan"]
    ood = [flan.run(n) for n in flan.split.unseen_train_runs]
    assert len(ood) == 3 and all(r.n_steps == 4 and r.train_ids().min() >= 1200 for r in ood)
    assert all(r.test_ids is not None and r.test_ids.min() == 677 and r.test_ids.max() == 854 for r in ood)


def test_metric_files_on_other_test_ids_make_their_own_benchmark(benches: dict) -> None:
    flan, text = benches["gptdynamics/it/pythia-410m/flan"], benches["gptdynamics/it/pythia-410m/flan+bleu-rougeL"]
    assert flan.trajectories == ("loss",) and len(flan.test) == 1055
    assert text.trajectories == ("bleu", "rougeL") and list(text.test.ids) == list(range(677, 1055))
    assert set(flan.test_groups) == set(FLAN_TASKS) and set(text.test_groups) == {"webnlg", "wmt16_de_en"}


def test_logs_with_progress_bars_and_without_lr(tree: Path, benches: dict) -> None:
    rte = benches["gptdynamics/ft/pythia-410m/rte"]
    by_seed = {r.seed: r for r in rte.runs if r.settings["task"] == "rte"}
    np.testing.assert_allclose(by_seed[20].lr, 5e-7 * (1 - np.arange(4) / 4))  # read past the progress bars
    np.testing.assert_allclose(by_seed[21].lr, 5e-7 * (1 - np.arange(4) / 4))  # no lr logged: the known schedule
    assert np.isfinite(by_seed[20].train_loss).all()


def test_the_published_split_is_the_default(benches: dict) -> None:
    for bid, b in benches.items():
        if "debug" in bid:
            continue
        task = b.meta.task
        seeds = sorted(b.run(n).seed for n in b.split.eval_runs)
        assert seeds == list(EVAL_SEEDS[task]), bid
        assert len(b.split.validation_runs) == 2 and "published protocol" in b.split.rule
        assert not set(b.split.fit_runs) & set(b.split.eval_runs) and not set(b.split.validation_runs) & set(b.split.eval_runs)


def _raw(run: Path, metric: str, ids: list[int] | None = None) -> np.ndarray:
    rows = {json.loads(line)["id"]: [e["loss"] for e in json.loads(line)["loss_trajectory"]] for line in open(run / f"all_{metric}_trajectory.out")}
    return np.array([rows[i] for i in (ids if ids is not None else sorted(rows))])


def _eval_runs(tree: Path, folder: str, task: str) -> list[Path]:
    seeds = EVAL_SEEDS[task]
    return sorted((p for p in (tree / "runs" / folder).iterdir() if p.name.startswith(f"output_{task}_") and int(p.name.rsplit("seed-", 1)[1]) in seeds),
                  key=lambda p: int(p.name.rsplit("seed-", 1)[1]))


def _constant_scores(values: np.ndarray) -> tuple[float, float]:
    """(mse_all_steps, spearman_final) of holding the initial value, straight from the arrays [R, n, K]."""
    from scipy.stats import spearmanr

    mse = float(((values[:, :, 1:] - values[:, :, :1]) ** 2).mean())
    rho = float(np.nanmean([spearmanr(v[:, 0], v[:, -1]).statistic for v in values]))
    return mse, rho


def test_constant_matches_an_independent_computation_of_the_published_protocol(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--data-dir", str(tree), "--benchmark", "gptdynamics", "--method", "constant", "--split", "seen", "--trajectory", "all",
            "--out", str(tmp_path / "r"), "--json", "--no-progress"]
    assert main(argv) == 0
    got = {(r["benchmark"], r["trajectory"]): r for r in json.loads(capsys.readouterr().out)["results"]}
    for task, (*_, test_ids, _, _, _, metrics) in FT.items():
        for metric in metrics:
            values = np.stack([_raw(p, metric) for p in _eval_runs(tree, task, task)])
            assert values.shape[1] == len(test_ids)  # every test example, none withheld
            mse, rho = _constant_scores(values)
            cell = got[(f"gptdynamics/ft/pythia-410m/{task}", metric)]
            assert cell["n_runs"] == 5 and cell["n_test"] == len(test_ids)
            assert cell["scores"]["mse_all_steps"]["mean"] == pytest.approx(mse, abs=1e-6)
            assert cell["scores"]["spearman_final"]["mean"] == pytest.approx(rho, abs=1e-6)
    # FLAN: each task scored on its own id range, the tables' average of the five; pooled kept apart.
    flan_runs = _eval_runs(tree, "flan", "flan")
    for bid, metric, tasks in (("flan", "loss", FLAN_TASKS), ("flan+bleu-rougeL", "bleu", {k: FLAN_TASKS[k] for k in ("webnlg", "wmt16_de_en")})):
        per_task = [_constant_scores(np.stack([_raw(p, metric, list(range(lo, hi + 1))) for p in flan_runs])) for lo, hi in tasks.values()]
        cell = got[(f"gptdynamics/it/pythia-410m/{bid}", metric)]
        assert cell["scores"]["mse_all_steps"]["mean"] == pytest.approx(np.mean([m for m, _ in per_task]), abs=1e-6)
        assert cell["scores"]["spearman_final"]["mean"] == pytest.approx(np.mean([r for _, r in per_task]), abs=1e-6)
        ids = [i for lo, hi in tasks.values() for i in range(lo, hi + 1)]
        pooled = _constant_scores(np.stack([_raw(p, metric, ids) for p in flan_runs]))
        assert cell["scores"]["spearman_final_pooled"]["mean"] == pytest.approx(pooled[1], abs=1e-6)
        assert set(cell["group_scores"]) == set(tasks)


def test_flan_ood_runs_are_scored_as_flans_unseen_train_runs(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--data-dir", str(tree), "--benchmark", "gptdynamics/it/pythia-410m/flan", "--method", "constant", "--method",
            "mean-trajectory", "--split", "unseen-train", "--out", str(tmp_path / "r"), "--json", "--no-progress"]
    assert main(argv) == 0
    got = {(r["benchmark"], r["method"]): r for r in json.loads(capsys.readouterr().out)["results"]}
    const = got[("gptdynamics/it/pythia-410m/flan", "constant")]
    assert const["status"] == "ok" and (const["n_runs"], const["n_test"]) == (3, 178)
    assert got[("gptdynamics/it/pythia-410m/flan", "mean-trajectory")]["reason"].startswith("the method predicts only runs as long as the fit runs")


def test_a_broken_run_spoils_only_its_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_release_tree(tmp_path / "gd", broken=True)
    found = {f.id: f for f in scan_benchmarks(root)}
    assert set(found) == IDS
    assert found[f"gptdynamics/ft/pythia-410m/{BROKEN_TASK}"].description.startswith("broken: ")
    assert main(["list", "benchmarks", "--data-dir", str(root)]) == 0
    capsys.readouterr()
    code = main(["run", "--data-dir", str(root), "--benchmark", "gptdynamics/ft", "--method", "constant", "--split", "seen",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 1 and len(err) == 1, err
    assert f"benchmark gptdynamics/ft/pythia-410m/{BROKEN_TASK}: " in err[0] and "all_loss_trajectory.out:2: malformed JSON" in err[0]
    written = {p.parts[-5] for p in (tmp_path / "r").rglob("seed-0.json")}
    assert "gptdynamics__ft__pythia-410m__rte" in written and f"gptdynamics__ft__pythia-410m__{BROKEN_TASK}" not in written


def test_the_debug_files_carry_the_flips(benches: dict, tree: Path) -> None:
    lines = [json.loads(line) for line in open(tree / "gptdynamics" / "sft_tasks" / "sst2" / DEBUG[0])]
    assert sum(o["is_mislabelled"] for o in lines) == 51


def test_the_debug_runs_are_a_mislabel_benchmark(benches: dict, tmp_path: Path) -> None:
    from tdabench.results.mislabel import candidates
    from tdabench.run.mislabel import Settings, identify

    debug = benches["gptdynamics/ft/pythia-410m/sst2-dataset-debug-is-mislabelled"]
    assert debug.design is not None and debug.design.name == "label-noise" and len(debug.design.flips) == 51
    assert benches["gptdynamics/ft/pythia-410m/sst2"].design is None  # the real SST-2 runs know of no flips
    cands = candidates(debug)  # the examples the fit runs trained (the test tree's short runs cover part of the 128)
    flipped = set(debug.design.flips)
    assert 0 < len(cands.ids) <= 128 and set(cands.ids.tolist()) <= set(range(128))
    assert cands.flipped.tolist() == [int(i) in flipped for i in cands.ids]
    results = identify(debug, [], Settings(out=tmp_path))
    assert [r.method for r in results] == ["random", "training-loss"] and all(r.status == "ok" for r in results)
    assert "cannot be retrained" in results[0].fixing["reason"]  # a GPTDynamics copy ships no base model
