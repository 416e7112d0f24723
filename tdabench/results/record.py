"""Result files: one JSON per cell (benchmark, trajectory, split, method label, seed), plus predictions.

Layout under the results directory (every component escaped, see :func:`escape`)::

    <benchmark id, components joined by '__'>/<trajectory>/<split>/<method label>/seed-<seed>.json
    ...                                                                      /seed-<seed>.npz   (predictions)

The schema is documented in docs/formats.md; ``SCHEMA_VERSION`` changes when it does, and
files of schema 1 (flat ``<split>/<method>.json``, ``metric`` and ``metrics`` keys) still load.
A cell is built once, as a frozen value: writing it never changes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import subprocess
import zipfile
from collections.abc import Mapping
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from tdabench.errors import DataError, TDABenchError
from tdabench.formats.jsonl import atomic_write_bytes, atomic_write_text, load_json_text
from tdabench.scores import SCORING_VERSION, Score

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
Status = Literal["ok", "n/a", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)
_PACKAGES = ("tdabench", "numpy", "scipy", "torch", "transformers", "pluggy")
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-")


@dataclass(frozen=True)
class Provenance:
    """What it takes to reproduce a result.

    Attributes:
        versions: python and the packages that compute results.
        git: the tdabench source commit (``-dirty`` if modified), when run from a checkout.
        command: the command that wrote the result, as given by the caller.
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


@dataclass(frozen=True)
class CellResult:
    """The outcome of one cell.

    Attributes:
        status: ``ok``; ``n/a`` (the method cannot serve the cell; ``reason`` says why); or
            ``failed`` (``error`` holds the message).
        method: the label it is shown under; ``method_name`` is the registered name,
            ``method_version`` its version, ``distribution`` the package that registered it,
            ``config`` its options.
        trajectory: what was simulated (loss, bleu, ...).
        fit: which fit served the cell: ``all-test`` (every test example) or ``withheld-test``
            (the held-out test examples withheld, for the unseen-test splits).
        key: hash of everything that determines the result; equal keys mean reusable.
        scores: score name -> :class:`~tdabench.scores.Score`; ``group_scores`` the same per
            test group (mixtures), and ``reference`` the split's headroom diagnostics.
        fit_info: what the method chose while fitting, from its optional ``fit_info()``.
        in_sample: the runner rescaled the predicted change by a least-squares fit to this
            split's own truth, because the method asked (``fit_info()["in_sample_scale"]``, the
            published TracIn-CP protocol): not comparable with out-of-sample cells.
    """

    status: Status
    method: str
    method_name: str
    config: Mapping[str, Any]
    origin: str
    benchmark: str
    data_hash: str
    trajectory: str
    split: str
    seed: int
    key: str
    method_version: str = "0"
    distribution: str = ""
    fit: str = ""
    scores: Mapping[str, Score] = field(default_factory=dict)
    group_scores: Mapping[str, Mapping[str, Score]] = field(default_factory=dict)
    reference: Mapping[str, float | None] = field(default_factory=dict)
    reason: str | None = None
    error: str | None = None
    fit_s: float | None = None
    simulate_s: float | None = None
    peak_mem_mb: float | None = None
    n_runs: int = 0
    n_test: int = 0
    predictions: str | None = None
    fit_info: Mapping[str, Any] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    in_sample: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    @property
    def metric(self) -> str:
        """The old name of :attr:`trajectory`."""
        return self.trajectory

    @property
    def metrics(self) -> Mapping[str, Score]:
        """The old name of :attr:`scores`."""
        return self.scores

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see docs/formats.md)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["config"] = dict(self.config)
        d["scores"] = {k: s.to_dict() for k, s in self.scores.items()}
        d["group_scores"] = {g: {k: s.to_dict() for k, s in sc.items()} for g, sc in self.group_scores.items()}
        d["reference"] = dict(self.reference)
        d["fit_info"] = dict(self.fit_info)
        d["provenance"] = dataclasses.asdict(self.provenance)
        return {"schema_version": SCHEMA_VERSION, **d}

    @classmethod
    def from_dict(cls, d: Any, where: str = "result") -> CellResult:
        """Parse and validate a result object of any readable schema."""
        if not isinstance(d, dict):
            raise DataError(where, f"not a tdabench result (a JSON {type(d).__name__}, expected an object)")
        version = d.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise DataError(where, f"result schema version {version!r} is not supported (expected {SCHEMA_VERSION}); rerun with --force",
                            field="schema_version")
        body = {k: v for k, v in d.items() if k not in ("schema_version", "generalization_gap")}
        if version == 1:  # the old words for trajectory and scores
            body["trajectory"] = body.pop("metric", None)
            body["scores"] = body.pop("metrics", {})
        if body.get("status") not in STATUSES:
            raise DataError(where, f"status must be one of {', '.join(STATUSES)}", field="status")
        try:
            scores = {k: Score.from_dict(v) for k, v in (body.pop("scores", None) or {}).items()}
            groups = {g: {k: Score.from_dict(v) for k, v in sc.items()} for g, sc in (body.pop("group_scores", None) or {}).items()}
            prov = Provenance.from_dict(body.pop("provenance", None) or {})
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in body.items() if k in known}, scores=scores, group_scores=groups, provenance=prov)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise DataError(where, f"invalid result: {exc}") from None


def cell_key(*, method_name: str, method_version: str, distribution: str, config: Mapping[str, Any], benchmark: str,
             data_hash: str, trajectory: str, split: str, seed: int, fit: str) -> str:
    """Hash of what determines a cell's result: the method and its version, the versions of
    tdabench and of the package that registered it, the config, data, split, seed and fit."""
    blob = json.dumps({
        "method": method_name, "method_version": method_version, "distribution": distribution,
        "tdabench": _version("tdabench"), "scoring": SCORING_VERSION, "config": dict(config), "benchmark": benchmark,
        "data": data_hash, "trajectory": trajectory, "split": split, "seed": seed, "fit": fit,
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def escape(component: str) -> str:
    """A name safe as one path component: every character outside ``[A-Za-z0-9.+-]`` becomes
    ``%XX``, so distinct names stay distinct (``sl:a`` is ``sl%3Aa``, ``sl_a`` is ``sl%5Fa``)."""
    if component in ("", ".", ".."):
        raise TDABenchError(f"{component!r} cannot name a result file: give a non-empty name other than '.' and '..'")
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in component)


def result_path(out: Path, benchmark: str, trajectory: str, split: str, method: str, seed: int) -> Path:
    """Where a cell's JSON lives; every part of the key is a path component, none can leave ``out``."""
    bench = "__".join(escape(part) for part in benchmark.split("/"))
    return Path(out) / bench / escape(trajectory) / escape(split) / escape(method) / f"seed-{int(seed)}.json"


def write_result(out: Path, result: CellResult, predictions: np.ndarray | None = None, extra: dict[str, np.ndarray] | None = None) -> CellResult:
    """Write predictions (compressed npz) then the JSON, both atomically; return the result as written."""
    path = result_path(out, result.benchmark, result.trajectory, result.split, result.method, result.seed)
    if predictions is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, pred=predictions.astype(np.float32), **(extra or {}))
        atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
        result = dataclasses.replace(result, predictions=path.with_suffix(".npz").name)
    atomic_write_text(path, json.dumps(result.to_dict(), indent=1) + "\n")
    return result


def read_result(path: Path) -> CellResult:
    """Read and validate one result file; anything unreadable is a one-line :class:`DataError`."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None
    return CellResult.from_dict(load_json_text(raw, path), str(path))


def predictions_readable(path: Path) -> bool:
    """Whether a predictions file holds the arrays a result needs."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {"pred", "runs", "test_ids", "steps"} <= set(z.files) and z["pred"].ndim == 3
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
        return False


def read_results(root: Path) -> list[CellResult]:
    """Every result under ``root``."""
    return [read_result(p) for p in sorted(Path(root).rglob("*.json"))]


def _version(pkg: str) -> str | None:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def provenance(seed: int, command: str) -> Provenance:
    """Versions, git hash, command, machine and time: what it takes to reproduce a result."""
    return Provenance(
        versions={"python": platform.python_version(), **{pkg: _version(pkg) for pkg in _PACKAGES}},
        git=git_revision(),
        command=command,
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
