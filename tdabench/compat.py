"""Keep a torchvision (or torchaudio) built for another torch from breaking ``import transformers``.

Why: kronfluence's metadata requires torchvision, though its code never imports it, so pip installs
PyPI's torchvision, which is a CUDA build (``0.28.0+cu130``). Next to the CPU torch that
constraints.txt pins, its compiled ops (``torchvision/_C.so``) cannot load: they link
``libtorch_cuda.so`` and ``libc10_cuda.so``, which a CPU torch does not ship. torchvision swallows
that failure (``extension._load_library``), then fails at import anyway, in
``_meta_registrations``: ``RuntimeError: operator torchvision::nms does not exist``.
transformers' ``is_torchvision_available()`` only asks whether the package can be *found*
(``importlib.util.find_spec``) and PIL imports, so every model class, text-only ones included,
imports ``transformers.image_utils`` -> ``torchvision.transforms`` through the loss module and
fails: ``from transformers import GPTNeoXForCausalLM`` raises "Could not import module
'GPTNeoXForCausalLM'".

What: :func:`hide_mismatched_builds` reads the build tag of torch and of each extension package
from their ``version.py`` files (no import, so ``import tdabench`` stays cheap), and where an
extension is a CUDA build next to a torch without CUDA, or of another CUDA major version, marks it
absent for this process: ``sys.modules[name] = None`` (the import system's own "not
importable" entry). ``find_spec`` then returns None, so transformers, datasets and accelerate take
their no-torchvision paths, and ``import torchvision`` raises ModuleNotFoundError instead of the
RuntimeError above. A torchvision that matches torch is left alone. Nothing tdabench installs uses
torchvision; ``tests/test_compat.py`` checks that ``transformers`` imports next to the installed
libraries. It runs when ``tdabench`` is imported, which every command, worker process and plugin does
first.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

#: Extension packages built against one torch, each with a ``version.py`` naming its build.
EXTENSIONS: tuple[str, ...] = ("torchvision", "torchaudio")
#: Why each extension was hidden in this process (name -> reason), for ``tdabench list`` and tests.
HIDDEN: dict[str, str] = {}


@dataclass(frozen=True)
class Build:
    """What a package's ``version.py`` says about its build.

    Attributes:
        version: the full version string, local tag included (``0.28.0+cu130``).
        cuda: the CUDA major version it was built for, or None for a CPU (or unknown) build.
    """

    version: str
    cuda: int | None


def _package_dir(name: str) -> Path | None:
    """Where package ``name`` lies, without importing it (None when it is not installed)."""
    if name in sys.modules:
        return None  # already imported (or already hidden): too late, or nothing to do
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def read_build(package_dir: Path) -> Build | None:
    """The build of the package in ``package_dir`` from its ``version.py``, or None if unreadable.

    torch writes ``__version__ = '2.13.0+cpu'`` and ``cuda: Optional[str] = '13.0'`` (or None);
    torchvision and torchaudio write ``__version__ = '0.28.0+cu130'``.
    """
    try:
        text = (package_dir / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^__version__\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
    if found is None:
        return None
    version = found.group(1)
    cuda: int | None = None
    declared = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"](\d+)\.\d+['\"]", text, re.M)
    local = re.search(r"\+cu(\d+)$", version)
    if declared is not None:
        cuda = int(declared.group(1))
    elif local is not None:
        cuda = int(local.group(1)[:-1])  # cu130 -> 13, cu118 -> 11
    return Build(version, cuda)


def mismatch(torch_build: Build, ext_build: Build) -> str | None:
    """Why an extension built as ``ext_build`` cannot load next to ``torch_build`` (None if it can)."""
    if ext_build.cuda is None:
        return None  # a CPU build runs next to any torch of its version
    if torch_build.cuda is None:
        return f"a CUDA {ext_build.cuda} build ({ext_build.version}) next to a torch without CUDA ({torch_build.version})"
    if torch_build.cuda != ext_build.cuda:
        return f"a CUDA {ext_build.cuda} build ({ext_build.version}) next to torch for CUDA {torch_build.cuda} ({torch_build.version})"
    return None


def hide_mismatched_builds(names: tuple[str, ...] = EXTENSIONS) -> dict[str, str]:
    """Mark each installed extension in ``names`` whose build cannot load next to the installed
    torch as absent (``sys.modules[name] = None``); returns name -> reason for those hidden now."""
    torch_dir = _package_dir("torch")
    if torch_dir is None:  # torch imported already, or not installed: read it from the module
        torch_mod = sys.modules.get("torch")
        file = getattr(torch_mod, "__file__", None)
        torch_dir = Path(file).parent if file else None
    torch_build = read_build(torch_dir) if torch_dir is not None else None
    if torch_build is None:
        return {}
    hidden: dict[str, str] = {}
    for name in names:
        where = _package_dir(name)
        build = read_build(where) if where is not None else None
        reason = mismatch(torch_build, build) if build is not None else None
        if reason is not None:
            sys.modules[name] = None  # type: ignore[assignment]  # the import system's "absent" marker
            hidden[name] = reason
    HIDDEN.update(hidden)
    return hidden
