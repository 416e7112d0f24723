"""Provenance: what it takes to reproduce a result, with no absolute path of the machine that made it."""

from __future__ import annotations

import dataclasses
import os
import platform
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

_PACKAGES = ("tdabench", "numpy", "scipy", "torch", "transformers", "pluggy")


@dataclass(frozen=True)
class Provenance:
    """What it takes to reproduce a result.

    Attributes:
        versions: python and the packages that compute results.
        git: the tdabench source commit (``-dirty`` if modified), when run from a checkout.
        command: the command that wrote the result, every path in it reduced to its last
            component (:func:`portable_command`).
        seed: the seed passed to the method.
        machine: OS, architecture and CPUs.
        created: when the result was written (UTC, ISO 8601).
    """

    versions: Mapping[str, str | None] = field(default_factory=dict)
    git: str | None = None
    command: str = ""
    seed: int = 0
    machine: str = ""
    created: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        """From the JSON form (unknown keys are ignored: older and newer files load)."""
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**dataclasses.asdict(self), "versions": dict(self.versions)}


def package_version(pkg: str) -> str | None:
    """The installed version of ``pkg``, or None."""
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def portable_command(argv: Sequence[str] | str) -> str:
    """The command line with every path reduced to its last component, so that a result file
    names no directory of the machine that wrote it (``--out /home/me/res`` becomes ``--out res``)."""
    words = shlex.split(argv) if isinstance(argv, str) else list(argv)

    def one(w: str) -> str:
        if "=" in w and w.startswith("-"):
            flag, value = w.split("=", 1)
            return f"{flag}={one(value)}"
        if os.sep in w or w.startswith("~"):
            name = Path(w.rstrip(os.sep)).name
            return name or w
        return w

    return shlex.join(one(w) for w in words)


def provenance(seed: int, command: Sequence[str] | str) -> Provenance:
    """Versions, git hash, command, machine and time: what it takes to reproduce a result."""
    return Provenance(
        versions={"python": platform.python_version(), **{pkg: package_version(pkg) for pkg in _PACKAGES}},
        git=git_revision(),
        command=portable_command(command),
        seed=seed,
        machine=f"{platform.system()} {platform.machine()}, {cpu_count()} CPUs",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def cpu_count() -> int:
    """CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The git commit of the tdabench source tree (with ``-dirty`` if modified), if in a checkout."""
    src = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src, capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
