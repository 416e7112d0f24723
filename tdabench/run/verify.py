"""Scores that can be checked: a cell's scores computed again from its stored predictions and the truth.

``tdabench leaderboard --verify`` checks every cell this way, and ``tdabench run`` checks a cell
before reusing it (point values only, which need no bootstrap). Predictions are stored as
float32, so values are compared within :data:`RTOL` / :data:`ATOL`, far below any edit that
changes what a table shows.
"""

from __future__ import annotations

import functools
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdabench.data import Benchmark
from tdabench.methods.zero_line import ZeroLine
from tdabench.results.record import CellResult
from tdabench.run.cells import score_split
from tdabench.run.views import SPLIT_FIT, fit_data, split_view
from tdabench.scores import N_BOOTSTRAP, Score

#: Relative and absolute tolerance between a stored value and the recomputed one (float32 predictions).
RTOL, ATOL = 1e-3, 1e-4
#: Rank scores (Spearman, LDS) move more: rounding the predictions to float32 for storage can
#: reorder near-ties (measured on bank v2: at most 0.017), and can make a constant-looking
#: column undefined (its count then differs by a few units). An edited score is still caught
#: by the error and skill scores, which are held to RTOL/ATOL. Their bootstrap bounds move twice
#: as much where values tie often (BLEU on the mixtures: up to 0.081 on bank v2).
RANK_ATOL = 0.05
RANK_SCORES = ("spearman", "lds")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one cell: ``ok``, ``mismatch`` (its scores differ from its
    predictions'), ``unchecked`` (no predictions, or no benchmark with its data, to check
    against) or ``skipped`` (not an ok cell: nothing was scored). ``detail`` says what."""

    status: str
    detail: str = ""


def _close(a: float, b: float, atol: float = ATOL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + RTOL * abs(b)


def _score_diffs(stored: Mapping[str, Score], got: Mapping[str, Score], where: str, intervals: bool) -> list[str]:
    diffs = []
    for name in sorted(set(stored) | set(got)):
        s, g = stored.get(name), got.get(name)
        if s is None or g is None:
            diffs.append(f"{where}{name} {'missing' if s is None else 'not a score of this cell'}")
            continue
        pairs = [("", s.mean, g.mean), (" std", s.std, g.std)]
        if intervals:
            pairs += [(" ci95 low", s.ci95[0], g.ci95[0]), (" ci95 high", s.ci95[1], g.ci95[1])]
        rank = name.startswith(RANK_SCORES)
        for what, a, b in pairs:
            if not _close(a, b, (2 * RANK_ATOL if what.startswith(" ci95") else RANK_ATOL) if rank else ATOL):
                diffs.append(f"{where}{name}{what} {a:.6g} stored, {b:.6g} recomputed")
        if s.n != g.n and not (rank and abs(s.n - g.n) <= max(2, s.n // 100)):
            diffs.append(f"{where}{name} n {s.n} stored, {g.n} recomputed")
    return diffs


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["pred"], dtype=np.float64), np.asarray(z["runs"]).astype(str), np.asarray(z["test_ids"], dtype=np.int64)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        return f"predictions {path.name} unreadable ({exc})"


@functools.lru_cache(maxsize=4)
def _zero_line(bench: Benchmark, trajectory: str, fit: str) -> ZeroLine:
    """The batch-blind reference of one fit (the same for every method and seed: fitted once)."""
    return ZeroLine.fit(fit_data(bench, trajectory, fit=fit, seed=0, with_model=False, cache_dir=None, device="cpu"))


def verify_cell(cell: CellResult, predictions: Path | None, bench: Benchmark, *, intervals: bool = True) -> Verdict:
    """Whether ``cell``'s stored scores are those of its stored ``predictions`` against ``bench``'s truth.

    ``intervals=False`` compares point values, stds and counts only (no bootstrap: fast).
    """
    if cell.status != "ok":
        return Verdict("skipped", f"a {cell.status} cell has no scores")
    if predictions is None or not Path(predictions).is_file():
        return Verdict("unchecked", "no predictions file to check its scores against")
    if bench.content_hash != cell.data_hash:
        return Verdict("unchecked", f"the benchmark {bench.id!r} found here has other data than the cell's")
    loaded = _load(Path(predictions))
    if isinstance(loaded, str):
        return Verdict("mismatch", loaded)
    pred, runs, test_ids = loaded
    view = split_view(bench, cell.split, cell.trajectory, seed=cell.seed)
    if tuple(runs.tolist()) != view.runs or not np.array_equal(test_ids, view.query.test.ids) or pred.shape != view.truth.shape:
        return Verdict("mismatch", f"predictions {Path(predictions).name} are not of this split's runs and test examples")
    if not np.isfinite(pred).all():
        return Verdict("mismatch", f"predictions {Path(predictions).name} hold non-finite values")
    try:
        ref: np.ndarray | None = _zero_line(bench, cell.trajectory, SPLIT_FIT[cell.split]).predict(view.query)
    except ValueError:
        ref = None
    scores, by_group = score_split(bench, test_ids, pred, view.truth, ref, n_boot=N_BOOTSTRAP if intervals else 1)
    diffs = _score_diffs(cell.scores, scores, "", intervals)
    for g in sorted(set(cell.group_scores) | set(by_group)):
        diffs += _score_diffs(cell.group_scores.get(g, {}), by_group.get(g, {}), f"group {g}: ", intervals)
    if diffs:
        more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
        return Verdict("mismatch", "stored scores differ from its predictions: " + "; ".join(diffs[:3]) + more)
    return Verdict("ok")
