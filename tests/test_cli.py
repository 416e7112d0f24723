"""The command line: list and run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gdtree import write_published_tree
from tdabench.cli import main


def test_list_methods_verbose_shows_origin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "methods", "-v"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("mean-trajectory"))
    assert "from baselines (tdabench" in line


def test_list_scores_and_splits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "scores"]) == 0
    assert main(["list", "splits"]) == 0
    out = capsys.readouterr().out.split()
    for name in ("mse_all_steps", "mae_all_steps", "spearman_final", "spearman_steps", "unseen-test", "unseen-train"):
        assert name in out


def test_list_benchmarks_of_a_gptdynamics_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=3)
    monkeypatch.setenv("TDABENCH_GPTDYNAMICS", str(root))
    assert main(["list", "benchmarks"]) == 0
    assert "gptdynamics/ft/pythia-410m/rte" in capsys.readouterr().out


def test_run_by_id_prefix_from_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=8, metrics=("loss", "bleu"))
    argv = ["run", "--data-dir", str(root), "--benchmark", "gptdynamics/ft", "--out", str(tmp_path / "r"),
            "--trajectory", "all", "--method", "constant", "--json", "--no-progress"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {(r["trajectory"], r["split"], r["status"]) for r in doc["results"]} == {
        ("loss", "seen", "ok"), ("loss", "unseen-test", "ok"), ("bleu", "seen", "ok"), ("bleu", "unseen-test", "ok"),
        ("loss", "unseen-train", "n/a"), ("loss", "unseen-both", "n/a"), ("bleu", "unseen-train", "n/a"), ("bleu", "unseen-both", "n/a"),
    }


def test_console_script_is_installed(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tdabench.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("tdabench ")


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_file_puts_one_method_under_two_configs(suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=4)
    cfg = tmp_path / f"methods{suffix}"
    if suffix == ".toml":
        cfg.write_text('[[methods]]\nname = "constant"\nlabel = "hold"\n\n[[methods]]\nname = "constant"\n\n[[methods]]\nname = "mean-trajectory"\n')
    else:
        cfg.write_text("methods:\n  - name: constant\n    label: hold\n  - name: constant\n  - name: mean-trajectory\n")
    assert main(["run", "--benchmark", str(root), "--config", str(cfg), "--split", "seen", "--out", str(tmp_path / "r"), "--json", "--no-progress"]) == 0
    methods = sorted(r["method"] for r in json.loads(capsys.readouterr().out)["results"])
    assert methods == ["constant", "hold", "mean-trajectory"]


def test_config_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_published_tree(tmp_path / "gd", n_runs=4)
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods:\n  - name: constant\n   label: x\n")
    assert main(["run", "--benchmark", str(root), "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"tdabench: error: {bad}:") and "malformed YAML" in err
    dup = tmp_path / "dup.toml"
    dup.write_text('[[methods]]\nname = "constant"\n[[methods]]\nname = "constant"\n')
    assert main(["run", "--benchmark", str(root), "--config", str(dup), "--out", str(tmp_path / "r")]) == 2
    assert "method 'constant' is given twice" in capsys.readouterr().err
