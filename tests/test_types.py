"""Types that count: mypy, at the strictness of ``[tool.mypy]`` in pyproject.toml, finds no error.

It checks ``tdabench``, the built-in plugins and the example plugin (the ``files`` of the
config). A second run reuses mypy's cache (``.mypy_cache``), so it takes seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_error() -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is in the test extra: pip install -e '.[test]'")
    cwd = os.getcwd()
    os.chdir(ROOT)  # the config's relative ``files`` and the cache live beside pyproject.toml
    try:
        out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml")])
    finally:
        os.chdir(cwd)
    assert status == 0, f"mypy found errors (fix them, or a library's wrong type with a commented `# type: ignore[code]`):\n{out}{err}"


def test_the_config_is_not_loosened() -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    for flag in ("check_untyped_defs", "disallow_untyped_defs", "disallow_incomplete_defs", "no_implicit_optional",
                 "strict_equality", "warn_unused_ignores", "warn_redundant_casts"):
        assert cfg.get(flag) is True, f"pyproject.toml [tool.mypy]: {flag} must stay true"
    assert not cfg.get("ignore_errors") and not cfg.get("ignore_missing_imports"), \
        "pyproject.toml [tool.mypy]: no blanket ignore; ignore_missing_imports goes per untyped library in [[tool.mypy.overrides]]"
    assert {"tdabench", "plugins/tdabench_plugins"} <= set(cfg["files"])


def test_no_file_wide_type_ignore() -> None:
    bad = [str(p.relative_to(ROOT)) for base in ("tdabench", "plugins", "docs/examples") for p in (ROOT / base).rglob("*.py")
           if any(line.strip() in ("# type: ignore", "# mypy: ignore-errors") for line in p.read_text(encoding="utf-8").splitlines())]
    assert not bad, f"file-wide type ignores: {bad}; ignore one line, with its error code and why"


MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for base in ("tdabench", "plugins") for p in sorted((ROOT / base).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split each by responsibility): {long}"
