"""Result files: one JSON per (method, benchmark, metric, split) cell, plus its predictions.

Layout under the results directory::

    <benchmark id, '/' -> '__'>/<metric>/<split>/<method display name>.json
    <benchmark id, '/' -> '__'>/<metric>/<split>/<method display name>.npz   (predictions)

The schema is documented in docs/formats.md; ``SCHEMA_VERSION`` changes when it does.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from tdabench.errors import DataError
from tdabench.formats.jsonl import atomic_write_bytes, atomic_write_text
from tdabench.metrics import Score

SCHEMA_VERSION = 1
STATUSES = ("ok", "n/a", "failed")
_PACKAGES = ("tdabench", "numpy", "scipy", "torch", "transformers", "pluggy")


@dataclass
class CellResult:
    """The outcome of one cell.

    Attributes:
        status: "ok", "n/a" (the method cannot serve the cell; ``reason`` says why) or
            "failed" (``error`` holds the message).
        method: display name; ``method_name`` is the registered name, ``config`` its options.
        key: hash of everything that determines the result; equal keys mean reusable.
        fit_info: what the method chose while fitting (e.g. a regularization strength), from
            its optional ``fit_info()`` method.
    """

    status: str
    method: str
    method_name: str
    config: dict[str, Any]
    origin: str
    benchmark: str
    data_hash: str
    metric: str
    split: str
    seed: int
    key: str
    metrics: dict[str, Score] = field(default_factory=dict)
    reason: str | None = None
    error: str | None = None
    fit_s: float | None = None
    simulate_s: float | None = None
    peak_mem_mb: float | None = None
    n_runs: int = 0
    n_test: int = 0
    predictions: str | None = None
    fit_info: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see docs/formats.md)."""
        d = {k: v for k, v in self.__dict__.items() if k != "metrics"}
        d["metrics"] = {k: s.to_dict() for k, s in self.metrics.items()}
        return {"schema_version": SCHEMA_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "result") -> CellResult:
        """Parse and validate a result object."""
        if d.get("schema_version") != SCHEMA_VERSION:
            raise DataError(where, f"result schema version {d.get('schema_version')!r} is not supported (expected {SCHEMA_VERSION}); rerun with --force", field="schema_version")
        body = {k: v for k, v in d.items() if k != "schema_version"}
        if body.get("status") not in STATUSES:
            raise DataError(where, f"status must be one of {', '.join(STATUSES)}", field="status")
        try:
            metrics = {k: Score.from_dict(v) for k, v in body.pop("metrics", {}).items()}
            return cls(**body, metrics=metrics)
        except (TypeError, KeyError, ValueError) as exc:
            raise DataError(where, f"invalid result: {exc}") from None


def cell_key(method_name: str, config: dict[str, Any], benchmark: str, data_hash: str, metric: str, split: str, seed: int) -> str:
    """Hash of what determines a cell's result."""
    blob = json.dumps([method_name, config, benchmark, data_hash, metric, split, seed], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _safe(name: str) -> str:
    return name.replace("/", "__").replace(":", "_").replace(" ", "_")


def result_path(out: Path, benchmark: str, metric: str, split: str, method: str) -> Path:
    """Where a cell's JSON lives."""
    return out / _safe(benchmark) / metric / split / f"{_safe(method)}.json"


def write_result(out: Path, result: CellResult, predictions: np.ndarray | None = None, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write predictions (compressed npz) then the JSON, both atomically; return the JSON path."""
    path = result_path(out, result.benchmark, result.metric, result.split, result.method)
    if predictions is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, pred=predictions.astype(np.float32), **(extra or {}))
        atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
        result.predictions = path.with_suffix(".npz").name
    atomic_write_text(path, json.dumps(result.to_dict(), indent=1, sort_keys=False) + "\n")
    return path


def read_result(path: Path) -> CellResult:
    """Read and validate one result file."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    return CellResult.from_dict(d, str(path))


def read_results(root: Path) -> list[CellResult]:
    """Every result under ``root``."""
    return [read_result(p) for p in sorted(Path(root).rglob("*.json"))]


def provenance(seed: int) -> dict[str, Any]:
    """Versions, git hash, command, machine and time: what it takes to reproduce a result."""
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": {"python": platform.python_version(), **versions},
        "git": git_revision(),
        "command": " ".join(["tdabench", *sys.argv[1:]]) if Path(sys.argv[0]).name == "tdabench" else " ".join(sys.argv),
        "seed": seed,
        "machine": f"{platform.system()} {platform.machine()}, {_cpu_count()} CPUs",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def git_revision() -> str | None:
    """The git commit of the tdabench source tree (with ``-dirty`` if modified), if in a checkout."""
    src = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src, capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
