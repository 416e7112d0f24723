"""One result record for every command: the envelope, its key, its path, and a run cell.

Every command writes the same envelope (:class:`Record`): ``schema`` (``tdabench.<kind>/<n>``),
``key`` (:func:`record_key`: everything the result depends on, tdabench's and the scoring's
versions included), a :data:`Status`, the benchmark and its data hash, the method (label,
registered name, version, distribution, config), the seed, the scores (each a
:class:`~tdabench.scores.Score` with its direction in :data:`~tdabench.scores.SCORES`), an
error and the :class:`~tdabench.results.provenance.Provenance`. Each kind adds its own fields:
:class:`CellResult` (``tdabench run``), ``MislabelResult`` (``tdabench mislabel``) and
``WhatIfResult`` (``tdabench simulate``).

Layout under a results directory (every component escaped, see :func:`escape`)::

    <benchmark id, components joined by '__'>/<trajectory>/<split>/<method label>/seed-<seed>.json
    ...                                                                      /seed-<seed>.npz   (predictions)
    <benchmark id ...>/mislabel/<ranking label>/seed-<seed>.json

The schema is documented in docs/formats.md. A record is built once, as a frozen value:
writing it never changes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args

import numpy as np

from tdabench.errors import DataError, TDABenchError
from tdabench.formats.jsonl import atomic_write_bytes, atomic_write_text, load_json_text
from tdabench.results.provenance import Provenance, package_version, provenance
from tdabench.scores import SCORING_VERSION, Score

Status = Literal["ok", "n/a", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-")
R = TypeVar("R", bound="Record")

__all__ = ["CellResult", "Provenance", "Record", "STATUSES", "Status", "cell_key", "escape", "predictions_readable", "provenance",
           "read_result", "read_results", "record_key", "result_path", "write_result"]


def _finite(x: Any) -> Any:
    """``x`` with every non-finite float replaced by None, recursively: result files are standard JSON."""
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, np.generic):
        return _finite(x.item())
    return x


@dataclass(frozen=True, kw_only=True)
class Record:
    """The envelope every command writes (see the module docstring).

    Attributes:
        key: hash of everything the result depends on; equal keys mean reusable.
        status: ``ok``; ``n/a`` (the method cannot serve it; ``reason`` says why, run cells only);
            or ``failed`` (``error`` holds the message).
        method: the label it is shown under; ``method_name`` the registered name (empty for a
            baseline ranking), ``method_version`` its version, ``distribution`` the package that
            registered it, ``origin`` where it came from, ``config`` its options.
        scores: score name -> :class:`~tdabench.scores.Score`.
    """

    KIND: ClassVar[str] = ""
    SCHEMA: ClassVar[str] = ""

    key: str
    status: Status
    benchmark: str
    data_hash: str
    method: str
    method_name: str = ""
    method_version: str = ""
    distribution: str = ""
    origin: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    scores: Mapping[str, Score] = field(default_factory=dict)
    error: str | None = None
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (docs/formats.md): ``schema`` first, then every field; standard JSON only."""
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["scores"] = {k: s.to_dict() for k, s in self.scores.items()}
        d["provenance"] = self.provenance.to_dict()
        return _finite({"schema": self.SCHEMA, **self._extra_to_dict(d)})

    def _extra_to_dict(self, d: dict[str, Any]) -> dict[str, Any]:
        """A kind's own fields in JSON form (override)."""
        return d

    @classmethod
    def from_dict(cls: type[R], d: Any, where: str = "result") -> R:
        """Parse and validate a record of this kind; anything wrong is a one-line :class:`DataError`."""
        if not isinstance(d, dict):
            raise DataError(where, f"not a tdabench result (a JSON {type(d).__name__}, expected an object)")
        schema = d.get("schema")
        if schema is None and "schema_version" in d:  # tdabench before the one envelope (cell schema 1 and 2)
            raise DataError(where, f"schema version {d['schema_version']!r} is older than this tdabench's {cls.SCHEMA!r}: "
                            "regenerate it with `tdabench run --force`", field="schema_version")
        if schema != cls.SCHEMA:
            kind = str(schema).split("/")[0] if isinstance(schema, str) else None
            why = (f"schema {schema!r} is another version of this kind than this tdabench's {cls.SCHEMA!r}: regenerate it with --force "
                   "or use the tdabench that wrote it") if kind == cls.SCHEMA.split("/")[0] else f"expected schema {cls.SCHEMA!r}, got {schema!r}"
            raise DataError(where, why, field="schema")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"schema"})
        if unknown:
            raise DataError(where, f"unknown field {unknown[0]!r}", field=unknown[0])
        for name in ("key", "benchmark", "data_hash", "method"):
            if not isinstance(d.get(name), str):
                raise DataError(where, f"expected a string, got {d.get(name)!r}", field=name)
        if d.get("status") not in STATUSES:
            raise DataError(where, f"status must be one of {', '.join(STATUSES)}", field="status")
        body = {k: v for k, v in d.items() if k != "schema"}
        try:
            body["scores"] = {k: Score.from_dict(v) for k, v in (body.get("scores") or {}).items()}
            body["provenance"] = Provenance.from_dict(body.get("provenance") or {})
            return cls(**cls._extra_from_dict(body))
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise DataError(where, f"invalid result: {exc}") from None

    @classmethod
    def _extra_from_dict(cls, body: dict[str, Any]) -> dict[str, Any]:
        """A kind's own fields from JSON form (override)."""
        return body


def record_key(kind: str, parts: Mapping[str, Any]) -> str:
    """The one key function: a hash of the kind, tdabench's version, the scoring version and
    ``parts`` (everything else the result depends on)."""
    blob = json.dumps({"kind": kind, "tdabench": package_version("tdabench"), "scoring": SCORING_VERSION, **parts},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class CellResult(Record):
    """The outcome of one cell of ``tdabench run`` (benchmark, trajectory, split, method, seed).

    Attributes:
        trajectory: what was simulated (loss, bleu, ...).
        split: the split scored.
        fit: which fit served the cell: ``all-test`` (every test example) or ``withheld-test``
            (the held-out test examples withheld, for the unseen-test splits).
        group_scores: the scores per test group (mixtures); ``reference`` the split's headroom.
        reason: why an ``n/a`` cell is not applicable.
        fit_info: what the method chose while fitting, from its optional ``fit_info()``.
        fit_s, simulate_s, peak_mem_mb: the method's cost (docs/formats.md says how it is measured).
        n_runs, n_test: the split's evaluation runs and test examples.
        predictions: the ``.npz`` beside the JSON (every prediction; ``tdabench leaderboard --verify``).
        samples: a few predicted and true trajectories of one evaluation run, for the pages' plots.
        in_sample: the runner rescaled the predicted change by a least-squares fit to this
            split's own truth, because the method asked (``fit_info()["in_sample_scale"]``, the
            published TracIn-CP protocol): not comparable with out-of-sample cells.
        ranked: False for a reference point (``Capabilities.reference``, e.g. ``retrain``): shown, never ranked.
    """

    KIND: ClassVar[str] = "cell"
    SCHEMA: ClassVar[str] = "tdabench.cell/3"

    trajectory: str
    split: str
    fit: str = ""
    group_scores: Mapping[str, Mapping[str, Score]] = field(default_factory=dict)
    reference: Mapping[str, float | None] = field(default_factory=dict)
    reason: str | None = None
    fit_s: float | None = None
    simulate_s: float | None = None
    peak_mem_mb: float | None = None
    n_runs: int = 0
    n_test: int = 0
    predictions: str | None = None
    samples: Mapping[str, Any] = field(default_factory=dict)
    fit_info: Mapping[str, Any] = field(default_factory=dict)
    in_sample: bool = False
    ranked: bool = True

    def _extra_to_dict(self, d: dict[str, Any]) -> dict[str, Any]:
        d["config"] = dict(self.config)
        d["group_scores"] = {g: {k: s.to_dict() for k, s in sc.items()} for g, sc in self.group_scores.items()}
        d["reference"] = dict(self.reference)
        d["fit_info"] = dict(self.fit_info)
        d["samples"] = dict(self.samples)
        return d

    @classmethod
    def _extra_from_dict(cls, body: dict[str, Any]) -> dict[str, Any]:
        body["group_scores"] = {g: {k: Score.from_dict(v) for k, v in sc.items()} for g, sc in (body.get("group_scores") or {}).items()}
        for name in ("trajectory", "split"):
            if not isinstance(body.get(name), str):
                raise ValueError(f"'{name}' must be a string")
        return body


def cell_key(*, method_name: str, method_version: str, distribution: str, config: Mapping[str, Any], benchmark: str,
             data_hash: str, trajectory: str, split: str, seed: int, fit: str) -> str:
    """The key of a run cell: the method and its version, the package that registered it, the
    config, data, trajectory, split, seed and fit (and, through :func:`record_key`, the versions)."""
    return record_key(CellResult.KIND, {
        "method": method_name, "method_version": method_version, "distribution": distribution, "config": dict(config),
        "benchmark": benchmark, "data": data_hash, "trajectory": trajectory, "split": split, "seed": seed, "fit": fit,
    })


def escape(component: str) -> str:
    """A name safe as one path component: every character outside ``[A-Za-z0-9.+-]`` becomes
    ``%XX``, so distinct names stay distinct (``sl:a`` is ``sl%3Aa``, ``sl_a`` is ``sl%5Fa``)."""
    if component in ("", ".", ".."):
        raise TDABenchError(f"{component!r} cannot name a result file: give a non-empty name other than '.' and '..'")
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in component)


def benchmark_dir(out: Path, benchmark: str) -> Path:
    """``out/<benchmark id, escaped, components joined by '__'>``."""
    return Path(out) / "__".join(escape(part) for part in benchmark.split("/"))


def result_path(out: Path, benchmark: str, trajectory: str, split: str, method: str, seed: int) -> Path:
    """Where a cell's JSON lives; every part of the key is a path component, none can leave ``out``."""
    return benchmark_dir(out, benchmark) / escape(trajectory) / escape(split) / escape(method) / f"seed-{int(seed)}.json"


def write_json(path: Path, record: Record) -> None:
    """Write a record's JSON atomically (the commit point of a result)."""
    atomic_write_text(path, json.dumps(record.to_dict(), indent=1, allow_nan=False) + "\n")


def write_result(out: Path, result: CellResult, predictions: np.ndarray | None = None, extra: dict[str, np.ndarray] | None = None) -> CellResult:
    """Write predictions (compressed npz) then the JSON, both atomically; return the result as written."""
    path = result_path(out, result.benchmark, result.trajectory, result.split, result.method, result.seed)
    if predictions is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, pred=predictions.astype(np.float32), **(extra or {}))
        atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
        result = dataclasses.replace(result, predictions=path.with_suffix(".npz").name)
    write_json(path, result)
    return result


def read_result(path: Path) -> CellResult:
    """Read and validate one run cell; anything unreadable is a one-line :class:`DataError`."""
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
    """Every run cell under ``root`` (mislabel records are skipped)."""
    return [read_result(p) for p in sorted(Path(root).rglob("seed-*.json")) if p.parent.parent.name != "mislabel"]
