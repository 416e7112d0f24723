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


def _set_step(obj: dict, step_index: int, value: object) -> dict:
    obj["loss_trajectory"][step_index]["step"] = value
    return obj


STRICT: dict[str, tuple[str, int, Callable[[dict], dict | str], str]] = {
    # Numbers are numbers: no strings, no booleans, no floats where integers belong, bounds checked.
    "string number": ("all_loss_trajectory.out", 2, lambda o: _set_loss(o, 0, "1.5"), "field 'loss': expected a number, got a string (\"1.5\")"),
    "boolean number": ("all_loss_trajectory.out", 2, lambda o: _set_loss(o, 1, True), "field 'loss': expected a number, got a boolean (true)"),
    "float step": ("all_loss_trajectory.out", 3, lambda o: _set_step(o, 1, 2.5), "field 'step': expected an integer, got a float (2.5)"),
    "negative step": ("all_loss_trajectory.out", 1, lambda o: {**o, "loss_trajectory": [{"step": -1, "loss": 1.0}] + o["loss_trajectory"][:-1]},
                      "step -1 is negative"),
    "huge id": ("train_samples_id.json", 2, lambda o: {**o, "samples_id": [2**63, 1, 2, 3]}, "field 'samples_id': expected an integer <= 9223372036854775807"),
    "huge value": ("all_loss_trajectory.out", 2, lambda o: _set_loss(o, 0, 1e300), "is beyond ±1e+06"),
    "deep json": ("train_samples_id.json", 2, lambda o: '{"step": 2, "samples_id": ' + "[" * 100000 + "]" * 100000 + "}", "train_samples_id.json:2:"),
}


@pytest.mark.parametrize("case", sorted(STRICT))
def test_strict_readers(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    fname, line, edit, expected = STRICT[case]
    target = _run_dir(root) / fname
    _rewrite_line(target, line, edit)
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res"), "--no-progress"])
    assert expected in msg and str(target) in msg


@pytest.mark.parametrize("where", ["trajectory", "examples"])
def test_invalid_utf8_is_one_line(where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    target = _run_dir(root) / "all_loss_trajectory.out" if where == "trajectory" else root / "gptdynamics" / "sft_tasks" / "rte" / "rte_0_19_train.json"
    lines = target.read_bytes().splitlines()
    lines[2] = lines[2][:10] + b"\xff\xfe" + lines[2][10:]
    target.write_bytes(b"\n".join(lines) + b"\n")
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res"), "--no-progress"])
    assert f"{target}:3: not valid UTF-8 text" in msg


@pytest.mark.parametrize(("lr", "expected"), [("'abc'", "field 'lr': expected a number, got a string"),
                                               ("-1e300", "field 'lr': expected a number between 0 and 10, got -1e+300"),
                                               ("True", "field 'lr': expected a number, got a boolean")])
def test_bad_learning_rates_in_the_log(lr: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    log = _run_dir(root) / "log.out"
    log.write_text("".join(f"{{'step': {t}, 'samples_id': [1], 'loss': 1.0, 'lr': {lr if t == 3 else 1e-6}}}\n" for t in range(1, 7)))
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res"), "--no-progress"])
    assert f"{log}:3: {expected}" in msg


def test_a_none_learning_rate_is_absent_and_the_schedule_fills_it(tmp_path: Path) -> None:
    from tdabench.formats.gptdynamics_load import load_benchmarks

    root = write_published_tree(tmp_path / "gd", n_runs=3)
    log = _run_dir(root) / "log.out"
    log.write_text("".join(f"{{'step': {t}, 'samples_id': [1], 'loss': 1.0, 'lr': {None if t == 3 else 4e-7}}}\n" for t in range(1, 7)))
    (bench,) = load_benchmarks(root)
    lr = bench.run(_run_dir(root).name).lr
    assert lr[0] == 4e-7 and lr[2] == pytest.approx(5e-7 * (1 - 2 / 6))  # the name's schedule at step 3


@pytest.mark.parametrize("which", ["missing", "empty"])
def test_example_file_problems_are_named(which: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    test_file = root / "gptdynamics" / "sft_tasks" / "rte" / "rte_0_9_eval.json"
    if which == "missing":
        test_file.unlink()
        expected = "the test example file of rte is missing (found rte_0_19_train.json)"
    else:
        test_file.write_text("\n")
        expected = f"{test_file}: the example file holds no examples"
    msg = _error_line(capsys, ["run", "--benchmark", str(root), "--out", str(tmp_path / "res"), "--no-progress"])
    assert expected in msg
