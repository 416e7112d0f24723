"""Reading result files for a leaderboard: validation, de-duplication, groups and model sizes.

A leaderboard must never mix schemas silently, so a result file of another schema version
is refused with one line naming it. Two files for the same cell (benchmark, metric, split,
method), for example from two results directories, are reported and the newest (by
``provenance.created``) is kept.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tdabench.errors import DataError, TDABenchError
from tdabench.results import SCHEMA_VERSION, CellResult

CellId = tuple[str, str, str, str]  # (benchmark, metric, split, method)


@dataclass(frozen=True)
class Entry:
    """One result and the file it came from (predictions live next to it)."""

    result: CellResult
    path: Path

    @property
    def cell(self) -> CellId:
        """The cell this result fills."""
        r = self.result
        return (r.benchmark, r.metric, r.split, r.method)

    @property
    def predictions_path(self) -> Path | None:
        """The ``.npz`` of predictions, if the result names one and it exists."""
        name = self.result.predictions
        if not name:
            return None
        p = self.path.parent / name
        return p if p.is_file() else None


@dataclass(frozen=True)
class Duplicate:
    """Several files for one cell: ``kept`` (the newest) and the ``dropped`` ones."""

    cell: CellId
    kept: Entry
    dropped: tuple[Entry, ...]


@dataclass(frozen=True)
class Collection:
    """The validated, de-duplicated results of one or more results directories.

    Attributes:
        entries: one per cell, sorted by cell.
        duplicates: cells that had more than one file.
        n_files: result files read.
        digest: sha256 over the relative paths and bytes of every file read.
    """

    entries: tuple[Entry, ...]
    duplicates: tuple[Duplicate, ...]
    n_files: int
    digest: str


def read_entry(path: Path) -> Entry:
    """Read and validate one result file; refuse other schema versions in one line."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file") from None
    if not isinstance(obj, dict) or "status" not in obj:
        raise DataError(path, "not a tdabench result file (no 'status'); pass only results directories to --results")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        age = "newer" if isinstance(version, int) and version > SCHEMA_VERSION else "older"
        fix = "regenerate it with `tdabench run --force`" if age == "older" else "upgrade tdabench"
        raise DataError(path, f"result schema version {version!r} is {age} than this tdabench's ({SCHEMA_VERSION}); refusing to mix it in: {fix}", field="schema_version")
    result = CellResult.from_dict(obj, str(path))
    if result.status == "ok":
        missing = [m for m in ("mse_all_steps", "mae_all_steps", "spearman_final", "spearman_steps") if m not in result.metrics]
        if missing:
            raise DataError(path, f"an 'ok' result lacks metric {missing[0]!r}", field="metrics")
    elif result.status == "n/a" and not result.reason:
        raise DataError(path, "an 'n/a' result must give its reason", field="reason")
    elif result.status == "failed" and not result.error:
        raise DataError(path, "a 'failed' result must give its error", field="error")
    return Entry(result, path)


def _created(entry: Entry) -> datetime:
    """When a result was written; results without a valid time count as oldest."""
    raw = entry.result.provenance.created
    try:
        t = datetime.fromisoformat(str(raw))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def collect(dirs: Sequence[Path]) -> Collection:
    """Every result file under ``dirs``, validated; duplicate cells resolved (newest wins)."""
    files: list[tuple[Path, Path]] = []
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            raise TDABenchError(f"results directory not found: {root}")
        files += [(root, p) for p in sorted(root.rglob("*.json"))]
    if not files:
        raise TDABenchError(f"no result files under {', '.join(str(d) for d in dirs)} (run `tdabench run --out DIR` first)")
    digest = hashlib.sha256()
    by_cell: dict[CellId, list[Entry]] = {}
    for root, path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
        entry = read_entry(path)
        by_cell.setdefault(entry.cell, []).append(entry)
    entries: list[Entry] = []
    duplicates: list[Duplicate] = []
    for cell in sorted(by_cell):
        # Newest first; the path breaks ties so the choice never depends on directory order.
        group = sorted(by_cell[cell], key=lambda e: (_created(e), e.path.as_posix()), reverse=True)
        entries.append(group[0])
        if len(group) > 1:
            duplicates.append(Duplicate(cell, group[0], tuple(group[1:])))
    return Collection(tuple(entries), tuple(duplicates), len(files), "sha256:" + digest.hexdigest())


def group_of(benchmark: str) -> str:
    """The benchmark family a leaderboard page gathers.

    ``builtin/it/...`` -> ``builtin-it``, ``builtin/ft/...`` -> ``builtin-ft``,
    ``gptdynamics/...`` -> ``gptdynamics``; other ids by their first two path components
    (their first one when the id is that short).
    """
    parts = [p for p in benchmark.split("/") if p]
    if not parts:
        return "other"
    if parts[0] == "gptdynamics" or len(parts) < 3:
        key = parts[0]
    else:
        key = f"{parts[0]}-{parts[1]}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


_SIZE = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)([kmbt])(?![a-z])", re.IGNORECASE)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def model_size(benchmark: str, n_params: int | None = None) -> float | None:
    """Parameters of the benchmark's model: the nominal size in the id, else ``n_params``.

    Ids follow ``<source>/<setting>/<model>/<task>``; the model name carries the size
    (``pythia-410m``, ``pythia-2.8b``, ``neox-1m``), as papers quote it.
    """
    parts = benchmark.split("/")
    model = parts[2] if len(parts) >= 4 else benchmark
    found = _SIZE.findall(model)
    if found:
        num, unit = found[-1]
        return float(num) * _SCALE[unit.lower()]
    return float(n_params) if n_params else None


def format_size(n: float | None) -> str:
    """``410M``, ``2.8B``, or ``unknown``."""
    if n is None:
        return "unknown"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"
