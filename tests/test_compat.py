"""transformers imports next to the field's libraries and their torchvision (tdabench/compat.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tdabench.compat import Build, mismatch, read_build


def _python(code: str, *, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env_path = [str(path)] if path is not None else []
    prelude = f"import sys; sys.path[:0] = {env_path!r}\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_transformers_imports_a_model_with_the_libraries_installed() -> None:
    """The README's install brings kronfluence, traker (and for tests dattri) with their
    requirements, torchvision among them: a model class must still import, in a fresh process."""
    done = _python("""
        import tdabench, tdabench.compat, importlib.util
        from transformers import GPTNeoXForCausalLM
        import kronfluence, trak, dattri
        from kronfluence.analyzer import Analyzer
        from trak import TRAKer
        print("hidden:", sorted(tdabench.compat.HIDDEN))
        print("torchvision installed:", importlib.util.find_spec("torchvision") is not None or "torchvision" in tdabench.compat.HIDDEN)
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torchvision installed: True" in done.stdout  # kronfluence's metadata brings it: the case this guards


def test_the_installed_torchvision_is_hidden_only_when_it_cannot_load() -> None:
    """Whatever torchvision is installed, tdabench hides it exactly when importing it fails."""
    alone = _python("import torchvision")
    guarded = _python("import tdabench.compat as c, sys; print(sorted(c.HIDDEN))")
    assert guarded.returncode == 0, guarded.stderr[-2000:]
    hidden = "'torchvision'" in guarded.stdout
    assert hidden == (alone.returncode != 0), (alone.stderr[-1000:], guarded.stdout)


@pytest.mark.parametrize(
    ("torch_text", "ext_text", "hidden"),
    [
        ("__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\n", "__version__ = '0.28.0+cu130'\n", True),
        ("__version__ = '2.13.0+cu130'\ncuda: Optional[str] = '13.0'\n", "__version__ = '0.28.0+cu130'\n", False),
        ("__version__ = '2.13.0+cu126'\ncuda: Optional[str] = '12.6'\n", "__version__ = '0.28.0+cu130'\n", True),
        ("__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\n", "__version__ = '0.28.0+cpu'\n", False),
        ("__version__ = '2.13.0'\ncuda: Optional[str] = '13.0'\n", "__version__ = '0.28.0'\n", False),
    ],
)
def test_a_cuda_build_next_to_another_torch_is_marked_absent(tmp_path: Path, torch_text: str, ext_text: str, hidden: bool) -> None:
    for name, text in (("torch", torch_text), ("torchvision", ext_text)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n"
                                                     if name == "torchvision" else "")
        (tmp_path / name / "version.py").write_text(text)
    done = _python("""
        import importlib.util
        import tdabench.compat  # importing tdabench hides what cannot load
        print(sorted(tdabench.compat.HIDDEN))
        print("found:", importlib.util.find_spec("torchvision") is not None)
        try:
            import torchvision
        except ModuleNotFoundError:
            print("import: absent")
        except RuntimeError:
            print("import: broken")
    """, path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    if hidden:
        assert "['torchvision']" in done.stdout and "found: False" in done.stdout and "import: absent" in done.stdout
    else:
        assert "[]" in done.stdout and "found: True" in done.stdout and "import: broken" in done.stdout


def test_read_build_and_mismatch(tmp_path: Path) -> None:
    (tmp_path / "version.py").write_text("__version__ = '0.28.0+cu118'\ngit_version = 'x'\n")
    assert read_build(tmp_path) == Build("0.28.0+cu118", 11)
    assert read_build(tmp_path / "absent") is None
    assert mismatch(Build("2.13.0+cpu", None), Build("0.28.0+cu118", 11)) is not None
    assert mismatch(Build("2.13.0+cu118", 11), Build("0.28.0+cu118", 11)) is None
