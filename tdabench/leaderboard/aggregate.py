"""The leaderboard's data: one ranked table per (benchmark, metric, split), and mean ranks.

Every renderer (markdown, HTML, CSV, JSON) reads these objects, so the orderings, the ranks
and the best-per-column marks are computed once and agree everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

from tdabench.data import SPLITS
from tdabench.leaderboard.collect import Entry, group_of
from tdabench.leaderboard.fmt import display
from tdabench.report import generalization_gaps
from tdabench.scores import spec as score_spec
from tdabench.results import CellResult

RANK_METRIC = "mse_all_steps"
TABLE_SCORES = ("mse_all_steps", "mae_all_steps", "spearman_final", "spearman_steps")
_STATUS_ORDER = {"ok": 0, "n/a": 1, "failed": 2}


@dataclass(frozen=True)
class Column:
    """A numeric column: ``key`` in exports, ``header`` on pages, which direction is best."""

    key: str
    header: str
    better: str  # "min" or "max"
    value: Callable[[Row], float | None]
    kind: str  # "score", "gap" or "cost"


@dataclass(frozen=True)
class Row:
    """One method in one table: its result, its rank (ok rows only) and its generalization gap."""

    entry: Entry
    rank: int | None
    gap: dict[str, float] | None

    @property
    def result(self) -> CellResult:
        """The cell's result."""
        return self.entry.result


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _score(name: str) -> Callable[[Row], float | None]:
    def get(row: Row) -> float | None:
        s = row.result.metrics.get(name)
        return _finite(s.mean) if row.result.status == "ok" and s is not None else None

    return get


def _gap(row: Row) -> float | None:
    return _finite(row.gap.get(RANK_METRIC)) if row.gap else None


def _attr(name: str) -> Callable[[Row], float | None]:
    return lambda row: _finite(getattr(row.result, name)) if row.result.status == "ok" else None


COLUMNS: tuple[Column, ...] = (
    *(Column(m, m, score_spec(m).better, _score(m), "score") for m in TABLE_SCORES),
    Column("gap_mse", "gap (Δ mse)", "min", _gap, "gap"),
    Column("fit_s", "fit s", "min", _attr("fit_s"), "cost"),
    Column("simulate_s", "simulate s", "min", _attr("simulate_s"), "cost"),
    Column("peak_mem_mb", "peak MiB", "min", _attr("peak_mem_mb"), "cost"),
)


@dataclass(frozen=True)
class Table:
    """The methods on one (benchmark, metric, split), best first.

    Attributes:
        best: column key -> methods holding the best value (only when two or more rows have one).
    """

    group: str
    benchmark: str
    metric: str
    split: str
    rows: tuple[Row, ...]
    best: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int] | None:
        """(evaluation runs, test examples) of the ok rows, if any."""
        ok = [r.result for r in self.rows if r.result.status == "ok"]
        return (ok[0].n_runs, ok[0].n_test) if ok else None


def _order_key(row: Row) -> tuple[int, float, str]:
    r = row.result
    mse = _score(RANK_METRIC)(row)
    if r.status == "ok":
        return (0 if mse is not None else 1, mse if mse is not None else 0.0, r.method)
    return (1 + _STATUS_ORDER[r.status], 0.0, r.method)


def best_marks(rows: Sequence[Row]) -> dict[str, frozenset[str]]:
    """Methods whose value of a column equals the best one as displayed (ties all marked)."""
    marks: dict[str, frozenset[str]] = {}
    for col in COLUMNS:
        vals = [(row.result.method, col.value(row)) for row in rows]
        vals = [(m, v) for m, v in vals if v is not None]
        if len(vals) < 2:
            continue
        best = min(v for _, v in vals) if col.better == "min" else max(v for _, v in vals)
        shown = display(col.kind, best)
        marks[col.key] = frozenset(m for m, v in vals if display(col.kind, v) == shown)
    return marks


def build_tables(entries: Sequence[Entry]) -> list[Table]:
    """One table per (benchmark, metric, split), sorted by group, benchmark, metric, split order."""
    gaps = generalization_gaps([e.result for e in entries])
    cells: dict[tuple[str, str, str], list[Entry]] = {}
    for e in entries:
        cells.setdefault((e.result.benchmark, e.result.metric, e.result.split), []).append(e)
    tables = []
    for (bench, metric, split), group in cells.items():
        rows = [Row(e, None, gaps.get((bench, metric, e.result.method, split))) for e in group]
        rows.sort(key=_order_key)
        mses = [_score(RANK_METRIC)(r) for r in rows]
        ranked = [m for m in mses if m is not None]
        ranks = rankdata(ranked, method="min").astype(int).tolist() if ranked else []
        it = iter(ranks)
        rows = [Row(r.entry, next(it) if m is not None else None, r.gap) for r, m in zip(rows, mses)]
        tables.append(Table(group_of(bench), bench, metric, split, tuple(rows), best_marks(rows)))
    return sorted(tables, key=table_sort_key)


def table_sort_key(t: Table) -> tuple[str, str, int, str, int, str]:
    """Group, benchmark, loss before other metrics, then the canonical split order."""
    split_pos = SPLITS.index(t.split) if t.split in SPLITS else len(SPLITS)
    return (t.group, t.benchmark, 0 if t.metric == "loss" else 1, t.metric, split_pos, t.split)


@dataclass(frozen=True)
class MeanRank:
    """A method's mean rank by ``mse_all_steps`` over the benchmarks that ranked it, per split.

    Attributes:
        by_split: split -> (mean rank, benchmarks ranked in, benchmarks with that split).
    """

    method: str
    by_split: dict[str, tuple[float | None, int, int]]


def mean_ranks(tables: Sequence[Table], metric: str) -> list[MeanRank]:
    """Mean rank (ties averaged) of each method over the benchmarks of ``tables`` for ``metric``.

    A method that is n/a, failed or undefined on a benchmark is not ranked there; the count
    beside each mean says over how many benchmarks it was taken. Sorted by the ``seen``
    mean rank (then the first split that has one), unranked methods last.
    """
    tables = [t for t in tables if t.metric == metric]
    splits = sorted({t.split for t in tables}, key=lambda s: SPLITS.index(s) if s in SPLITS else len(SPLITS))
    methods = sorted({r.result.method for t in tables for r in t.rows})
    ranks: dict[tuple[str, str], list[float]] = {}
    totals = {s: 0 for s in splits}
    for t in tables:
        totals[t.split] += 1
        scored = [(r.result.method, _score(RANK_METRIC)(r)) for r in t.rows]
        scored = [(m, v) for m, v in scored if v is not None]
        if not scored:
            continue
        avg = rankdata([v for _, v in scored], method="average")
        for (m, _), rk in zip(scored, avg):
            ranks.setdefault((m, t.split), []).append(float(rk))
    out = []
    for m in methods:
        by = {}
        for s in splits:
            vals = ranks.get((m, s), [])
            by[s] = (float(np.mean(vals)) if vals else None, len(vals), totals[s])
        out.append(MeanRank(m, by))

    def key(mr: MeanRank) -> tuple[float, ...]:
        return tuple(v[0] if v[0] is not None else math.inf for v in mr.by_split.values()) + (0.0,)

    return sorted(out, key=lambda mr: (key(mr), mr.method))
