"""Reading result files for a leaderboard: validation, de-duplication, groups and model sizes.

A leaderboard must never mix silently: a result file that cannot be read, whose schema is
not one this tdabench reads, or whose scores do not count the trajectories of its split is
reported in one line and left out; results of one method computed under different versions
are refused, unless told otherwise. Two files for the same cell (benchmark, trajectory, split,
method), for example from two results directories, are reported and the newest (by
``provenance.created``) is kept.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tdabench.errors import DataError, TDABenchError
from tdabench.results.mislabel import MislabelResult
from tdabench.results.record import CellResult
from tdabench.scores import spec as score_spec

CellId = tuple[str, str, str, str, int]  # (benchmark, trajectory, split, method, seed)
REQUIRED_SCORES = ("mse_all_steps", "mae_all_steps", "spearman_final", "spearman_steps")


@dataclass(frozen=True)
class Entry:
    """One result and the file it came from (predictions live next to it)."""

    result: CellResult
    path: Path

    @property
    def cell(self) -> CellId:
        """The cell this result fills."""
        r = self.result
        return (r.benchmark, r.trajectory, r.split, r.method, r.seed)

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
        problems: one line per file left out (unreadable, other schema, inconsistent counts).
        mislabel: the mislabel-identification results (``tdabench mislabel``), newest per
            (benchmark, ranking).
    """

    entries: tuple[Entry, ...]
    duplicates: tuple[Duplicate, ...]
    n_files: int
    digest: str
    problems: tuple[str, ...] = ()
    mislabel: tuple[MislabelResult, ...] = ()


def read_entry(path: Path) -> Entry:
    """Read and validate one result file; anything wrong is a one-line :class:`DataError`."""
    try:
        raw = path.read_bytes()
        obj = json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file") from None
    except (OSError, RecursionError, ValueError) as exc:
        raise DataError(path, f"cannot read ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or "status" not in obj:
        raise DataError(path, "not a tdabench result file (no 'status'); pass only results directories or archives to --results")
    result = CellResult.from_dict(obj, str(path))
    if result.status == "ok":
        missing = [m for m in REQUIRED_SCORES if m not in result.scores]
        if missing:
            raise DataError(path, f"an 'ok' result lacks score {missing[0]!r}", field="scores")
        expected = result.n_runs * result.n_test
        for name, score in result.scores.items():
            if score_spec(name).kind == "error" and score.n != expected:
                raise DataError(path, f"score {name!r} counts {score.n} trajectories, but the split has {result.n_runs} runs x "
                                      f"{result.n_test} test examples = {expected}: refusing a partial score", field="scores")
    elif result.status == "n/a" and not result.reason:
        raise DataError(path, "an 'n/a' result must give its reason", field="reason")
    elif result.status == "failed" and not result.error:
        raise DataError(path, "a 'failed' result must give its error", field="error")
    return Entry(result, path)


def check_versions(entries: Sequence[Entry]) -> None:
    """One line refusing results of one method computed under different versions of it, of
    the package that registered it, or of tdabench."""
    seen: dict[str, dict[tuple[str, str, str], Entry]] = {}
    for e in entries:
        r = e.result
        if r.status == "n/a":
            continue
        ident = (r.method_version, r.distribution, str(r.provenance.versions.get("tdabench")))
        seen.setdefault(r.method, {}).setdefault(ident, e)
    for method, idents in sorted(seen.items()):
        if len(idents) > 1:
            (a, ea), (b, eb) = sorted(idents.items())[:2]
            raise TDABenchError(
                f"results of method {method!r} come from different versions (version {a[0]}, {a[1] or 'unknown package'}, tdabench {a[2]} "
                f"in {ea.path}; version {b[0]}, {b[1] or 'unknown package'}, tdabench {b[2]} in {eb.path}): recompute the old ones "
                "with `tdabench run`, or pass --allow-mixed-versions")


def check_data(entries: Sequence[Entry], mislabel: Iterable[MislabelResult] = ()) -> None:
    """One line refusing two result sets of one benchmark computed on different data (its data
    hash): merged from several machines, they would rank methods on different trajectories."""
    seen: dict[str, tuple[str, str]] = {}
    for bench, h, where in [(e.result.benchmark, e.result.data_hash, str(e.path)) for e in entries] + \
                           [(m.benchmark, m.data_hash, f"the mislabel ranking {m.method!r}") for m in mislabel]:
        if bench in seen and seen[bench][0] != h:
            raise TDABenchError(f"results of {bench} come from two versions of its data ({seen[bench][0][:19]}... in {seen[bench][1]}; "
                                f"{h[:19]}... in {where}): recompute one set on the other's benchmark, or leave one out")
        seen.setdefault(bench, (h, where))


def _created(entry: Entry) -> datetime:
    """When a result was written; results without a valid time count as oldest."""
    raw = entry.result.provenance.created
    try:
        t = datetime.fromisoformat(str(raw))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def collect(dirs: Sequence[Path], *, allow_mixed_versions: bool = False) -> Collection:
    """Every result file under ``dirs``, validated; unreadable ones reported and left out;
    duplicate cells resolved (newest wins); mixed method versions refused unless allowed."""
    files: list[tuple[Path, Path]] = []
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            raise TDABenchError(f"results directory not found: {root} (--results takes a directory or an archive made by --export)")
        files += [(root, p) for p in sorted(root.rglob("*.json"))]
    if not files:
        raise TDABenchError(f"no result files under {', '.join(str(d) for d in dirs)} (run `tdabench run --out DIR` first)")
    digest = hashlib.sha256()
    by_cell: dict[CellId, list[Entry]] = {}
    problems: list[str] = []
    mislabel: dict[tuple[str, str, int], MislabelResult] = {}
    for root, path in files:
        try:
            raw = path.read_bytes()
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + raw)
            kind = _schema(raw)
            if kind == MislabelResult.SCHEMA:
                got = MislabelResult.from_dict(json.loads(raw), str(path))
                old = mislabel.get((got.benchmark, got.method, got.seed))
                if old is None or got.provenance.created >= old.provenance.created:
                    mislabel[(got.benchmark, got.method, got.seed)] = got
                continue
            if kind is not None and kind != CellResult.SCHEMA and kind.split("/")[0] in ("tdabench.whatif", "tdabench.mislabel-retrained",
                                                                                         "tdabench.run", "tdabench.results"):
                continue  # another command's file (what-if answers, retraining outcomes, an archive's manifest): not a cell
            entry = read_entry(path)
        except (DataError, OSError) as exc:
            problems.append(str(exc) if isinstance(exc, DataError) else f"{path}: cannot read ({exc.strerror})")
            continue
        by_cell.setdefault(entry.cell, []).append(entry)
    entries: list[Entry] = []
    duplicates: list[Duplicate] = []
    for cell in sorted(by_cell):
        # Newest first; the path breaks ties so the choice never depends on directory order.
        group = sorted(by_cell[cell], key=lambda e: (_created(e), e.path.as_posix()), reverse=True)
        entries.append(group[0])
        if len(group) > 1:
            duplicates.append(Duplicate(cell, group[0], tuple(group[1:])))
    check_data(entries, mislabel.values())
    if not allow_mixed_versions:
        check_versions(entries)
    return Collection(tuple(entries), tuple(duplicates), len(files), "sha256:" + digest.hexdigest(), tuple(problems),
                      tuple(mislabel[k] for k in sorted(mislabel)))


def _schema(raw: bytes) -> str | None:
    """The ``schema`` of a tdabench file other than a cell result (None for a cell, or unreadable)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return obj.get("schema") if isinstance(obj, dict) and isinstance(obj.get("schema"), str) else None


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
    for part in reversed(benchmark.split("/")[1:]):  # the model part: builtin/cf/it/neox-1m/mixture too
        found = _SIZE.findall(part)
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
