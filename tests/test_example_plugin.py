"""The example third-party package, really installed into an isolated target directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "tdabench-example-plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pip-install the example (not editable, no deps: tdabench is already here) into a target dir."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("src") / "pkg"
    subprocess.run(["cp", "-r", str(EXAMPLE), str(build)], check=True)  # build outside the repo tree
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(build)],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("TDABENCH_DISABLE_PLUGIN_AUTOLOAD", None)
    return env


def _tdabench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tdabench.cli", *args], env=env, capture_output=True, text=True)


def test_installed_plugin_is_listed(installed: dict[str, str]) -> None:
    out = _tdabench(installed, "list", "methods", "-v")
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if l.startswith("knn "))
    assert "from knn (tdabench-example-plugin 0.1.0)" in line
    assert "k_train (int, default 3)" in out.stdout


def test_installed_plugin_runs_and_is_scored(installed: dict[str, str], synthetic_dir: Path, tmp_path: Path) -> None:
    out = _tdabench(installed, "run", "--benchmark", str(synthetic_dir), "--method", "knn", "--method", "knn:k=1",
                    "--method", "mean-trajectory", "--out", str(tmp_path / "r"), "--json", "--no-progress")
    assert out.returncode == 0, out.stderr
    res = {(r["method"], r["split"]): r for r in json.loads(out.stdout)["results"]}
    assert {r["status"] for r in res.values()} == {"ok"}
    assert res[("knn", "seen")]["origin"] == "knn (tdabench-example-plugin 0.1.0)"
    assert res[("knn:k=1", "unseen-test")]["config"] == {"k": 1, "k_train": 3, "dim": 512}


def test_the_example_package_tests_pass(installed: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                         env=installed, capture_output=True, text=True, cwd=EXAMPLE)
    assert out.returncode == 0, out.stdout[-2000:]
    assert " passed" in out.stdout
