"""Reading and writing the GPTDynamics layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gdtree import write_published_tree
from tdabench.data import Benchmark
from tdabench.formats.gptdynamics_load import load_benchmarks
from tdabench.formats.gptdynamics_write import write_benchmark
from tdabench.formats.names import format_run_name, model_slug, parse_run_name
from tdabench.sources.synthetic import SyntheticTruth


def test_run_name_round_trip() -> None:
    name = "output_rte_bs-4_shot-200_sample-128_model-pythia-410m-deduped_lr-5e-7_weight-decay-0.001_epoch-3_loss-last-token_seed-28"
    s = parse_run_name(name)
    assert s == {
        "task": "rte", "bs": "4", "shot": "200", "sample": "128", "model": "pythia-410m-deduped",
        "lr": "5e-7", "weight-decay": "0.001", "epoch": "3", "loss": "last-token", "seed": "28",
    }
    assert format_run_name(s) == name
    assert parse_run_name("output_wmt16_de_en_bs-4_model-pythia-1b_seed-1")["task"] == "wmt16_de_en"
    assert parse_run_name("not-a-run") == {}
    assert model_slug("EleutherAI/pythia-410m-deduped") == "pythia-410m"


def test_published_tree_reads_with_ids_settings_and_examples(tmp_path: Path) -> None:
    root = write_published_tree(tmp_path / "gd")
    (bench,) = load_benchmarks(root)
    assert bench.id == "gptdynamics/ft/pythia-410m/rte"
    assert bench.meta.model == "pythia-410m-deduped" and bench.meta.n_params == 410_000_000
    assert bench.meta.trajectories == ("loss", "bleu")
    assert len(bench.runs) == 8 and bench.runs[0].n_steps == 6
    assert bench.runs[0].settings["lr"] == "5e-7"
    # No log.out: the published schedule (linear decay from the name's lr, no warmup).
    np.testing.assert_allclose(bench.runs[0].lr, 5e-7 * (1 - np.arange(6) / 6))
    assert list(bench.test.ids) == list(range(200, 210))
    assert bench.test.prompts[0] == "Test 200. Answer:" and bench.test.targets[0] == " no"
    assert len(bench.train) == 20 and bench.train.texts[3] == "Premise 3. Answer: yes"
    raw = [json.loads(line) for line in open(next((root / "runs" / "rte").iterdir()) / "all_loss_trajectory.out")]
    run0 = bench.run(next((root / "runs" / "rte").iterdir()).name)
    assert run0.trajectories["loss"].values[0, 2] == raw[0]["loss_trajectory"][2]["loss"]
    # Default split of 8 runs: by seed, 6 fit / 1 val / 1 eval, 2 of 10 test ids withheld.
    assert (len(bench.split.fit_runs), len(bench.split.validation_runs), len(bench.split.eval_runs)) == (6, 1, 1)
    assert len(bench.split.heldout_test_ids) == 2 and bench.split.unseen_train_runs == ()


@pytest.mark.parametrize("where", ["root", "task", "run"])
def test_accepts_root_task_folder_or_single_run(tmp_path: Path, where: str) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    path = {"root": root, "task": root / "runs" / "rte", "run": next((root / "runs" / "rte").iterdir())}[where]
    (bench,) = load_benchmarks(path)
    assert len(bench.runs) == (1 if where == "run" else 3)
    assert bench.train.has_text  # example files are found above the given folder


def test_groups_by_setting_and_task(tmp_path: Path) -> None:
    root = write_published_tree(tmp_path / "gd", task="rte", n_runs=2)
    write_published_tree(tmp_path / "gd2", task="sst2", n_runs=2, seed=1)
    for p in (tmp_path / "gd2").iterdir():
        for q in p.rglob("*"):
            if q.is_file():
                dest = root / q.relative_to(tmp_path / "gd2")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(q.read_bytes())
    ids = [b.id for b in load_benchmarks(root)]
    assert ids == ["gptdynamics/ft/pythia-410m/rte", "gptdynamics/ft/pythia-410m/sst2"]


def test_round_trip_preserves_content(tmp_path: Path, synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    bench = synthetic[0]
    root = write_benchmark(bench, tmp_path / "out")
    (back,) = load_benchmarks(root)
    assert back.content_hash == bench.content_hash
    assert back.id == bench.id and back.meta == bench.meta and back.split == bench.split
    for a, b in zip(bench.runs, back.runs):
        np.testing.assert_array_equal(a.batches, b.batches)
        np.testing.assert_allclose(a.lr, b.lr)
    # And what we write is again readable as a published tree (the manifest is optional).
    (root / "tdabench.json").unlink()
    (plain,) = load_benchmarks(root)
    assert plain.content_hash == bench.content_hash


def test_written_layout_is_plain_gptdynamics(tmp_path: Path, synthetic: tuple[Benchmark, SyntheticTruth]) -> None:
    bench = synthetic[0]
    root = write_benchmark(bench, tmp_path / "out")
    run = bench.runs[0]
    run_dir = root / "runs" / "toy" / run.name
    lines = [json.loads(line) for line in open(run_dir / "train_samples_id.json")]
    assert lines[0] == {"step": 1, "samples_id": run.batches[0].tolist()}
    traj = [json.loads(line) for line in open(run_dir / "all_bleu_trajectory.out")]
    assert set(traj[0]) == {"id", "loss_trajectory"}
    assert traj[0]["loss_trajectory"][0] == {"step": 1, "loss": run.trajectories["bleu"].values[0, 0]}
    train_file = root / "gptdynamics" / "sft_tasks" / "toy" / "toy_train_0-79.json"
    first = json.loads(train_file.read_text().splitlines()[0])
    assert set(first) == {"id", "input", "context"}



def test_a_recorded_pair_that_shares_half_a_published_name_is_read(tmp_path: Path) -> None:
    # The recorder's webnlg pool is webnlg_train_0-399.json, as published, but its test file is
    # its own (not the published webnlg_dev_0-177.json): the folder's pair is read, not half the
    # published one. Half a published pair with no other test file stays an error.
    from tdabench.formats.gptdynamics_read import find_example_files

    folder = tmp_path / "gptdynamics" / "sft_tasks" / "webnlg"
    folder.mkdir(parents=True)
    (tmp_path / "runs" / "webnlg").mkdir(parents=True)
    (folder / "webnlg_train_0-399.json").write_text("")
    start = tmp_path / "runs" / "webnlg"
    assert find_example_files(start, "webnlg", "webnlg") == (folder / "webnlg_train_0-399.json", None, folder)
    (folder / "webnlg_validation_0-127.json").write_text("")
    assert find_example_files(start, "webnlg", "webnlg") == (folder / "webnlg_train_0-399.json", folder / "webnlg_validation_0-127.json", folder)
