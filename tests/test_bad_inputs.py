"""Every bad input the user can cause gets one line on stderr, naming file, line and field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gdtree import write_published_tree
from tdabench.cli import main


def _run_dir(root: Path) -> Path:
    return sorted((root / "runs" / "rte").iterdir())[0]


def _rewrite_line(path: Path, lineno: int, edit: Callable[[dict], dict | str]) -> None:
    lines = path.read_text().splitlines()
    obj = json.loads(lines[lineno - 1])
    new = edit(obj)
    lines[lineno - 1] = new if isinstance(new, str) else json.dumps(new)
    path.write_text("\n".join(lines) + "\n")


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    err = [e for e in err if e.strip() and "%|" not in e]  # drop progress-bar redraws
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("tdabench: error: ")
    assert "Traceback" not in err[0]
    return err[0]


def _set_loss(obj: dict, step_index: int, value: object) -> dict:
    obj["loss_trajectory"][step_index]["loss"] = value
    return obj


CASES: dict[str, tuple[str, int, Callable[[dict], dict | str], str]] = {
    # name: (file, line, edit, expected fragment)
    "malformed json": ("train_samples_id.json", 3, lambda o: '{"step": 3, "samples_id": [1, 2', "train_samples_id.json:3: malformed JSON"),
    "id out of range": ("train_samples_id.json", 2, lambda o: {**o, "samples_id": [1, 2, 3, 99]}, "train_samples_id.json:2: field 'samples_id': training id 99 is out of range"),
    "duplicate step": ("train_samples_id.json", 4, lambda o: {**o, "step": 3}, "train_samples_id.json:4: field 'step': duplicate step 3 (first at line 3)"),
    "missing field": ("train_samples_id.json", 2, lambda o: {"step": 2}, "train_samples_id.json:2: field 'samples_id': missing"),
    "nan value": ("all_loss_trajectory.out", 5, lambda o: _set_loss(o, 2, float("nan")), "all_loss_trajectory.out:5: field 'loss': value nan at step 3 is not finite"),
    "string value": ("all_loss_trajectory.out", 2, lambda o: _set_loss(o, 0, "x"), "all_loss_trajectory.out:2: field 'loss': expected a number, got a string (\"x\")"),
    "short trajectory": ("all_bleu_trajectory.out", 1, lambda o: {**o, "loss_trajectory": o["loss_trajectory"][:-1]}, "all_bleu_trajectory.out:1: field 'loss_trajectory': trajectory has 5 steps, other lines have 6"),
    "ragged trajectory": ("all_loss_trajectory.out", 4, lambda o: {**o, "loss_trajectory": o["loss_trajectory"][:-1]}, "all_loss_trajectory.out:4: field 'loss_trajectory': trajectory has 5 steps, other lines have 6"),
    "duplicate test id": ("all_loss_trajectory.out", 3, lambda o: {**o, "id": 200}, "all_loss_trajectory.out:3: field 'id': duplicate test id 200"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_run_file(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    fname, line, edit, expected = CASES[case]
    target = _run_dir(root) / fname
    _rewrite_line(target, line, edit)
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res"), "--no-progress"])
    assert expected in msg
    assert str(target) in msg


def test_missing_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    f = _run_dir(root) / "train_samples_id.json"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res")])
    assert "train_samples_id.json: field 'step': missing step 3 (steps must run 1..5)" in msg


def test_trajectories_shorter_than_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    f = _run_dir(root) / "all_loss_trajectory.out"
    for line in range(1, 11):
        _rewrite_line(f, line, lambda o: {**o, "loss_trajectory": o["loss_trajectory"][:-1]})
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res")])
    assert "all_loss_trajectory.out:1: field 'loss_trajectory': trajectory has 5 steps (1..5) but train_samples_id.json has 6" in msg


def test_bad_example_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    f = root / "gptdynamics" / "sft_tasks" / "rte" / "rte_0_19_train.json"
    _rewrite_line(f, 7, lambda o: {**o, "input": 7})
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res")])
    assert msg.endswith("rte_0_19_train.json:7: field 'input': expected str, got 7")


def test_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error_line(capsys, ["run", "--benchmark", str(tmp_path / "nope"), "--out", str(tmp_path / "res")])
    assert msg == f"tdabench: error: {tmp_path / 'nope'}: directory not found"


def test_directory_without_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error_line(capsys, ["run", "--benchmark", str(tmp_path), "--out", str(tmp_path / "res")])
    assert "no run directories found" in msg


def test_missing_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error_line(capsys, ["list", "benchmarks", "--data-dir", str(tmp_path / "gone")])
    assert "GPTDynamics directory not found" in msg


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--method", "mean-trajectroy"], "unknown method 'mean-trajectroy'; did you mean 'mean-trajectory'?"),
        (["--split", "unseen_test"], "unknown split 'unseen_test'; did you mean 'unseen-test'"),
        (["--method", "constant:alpha=1"], "method 'constant' has no option 'alpha'"),
    ],
)
def test_unknown_names(argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res"), *argv])
    assert expected in msg


def test_unknown_benchmark_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    msg = _error_line(capsys, ["run", "--data-dir", str(root), "--benchmark", "gptdynamics/ft/pythia-410m/rtee", "--out", str(tmp_path / "r")])
    assert "unknown benchmark 'gptdynamics/ft/pythia-410m/rtee'; did you mean 'gptdynamics/ft/pythia-410m/rte'?" in msg
