"""The leaderboard's tables: one ranked table per (benchmark, trajectory, split), mean ranks and mean skills.

Methods are ranked by ``skill_mse``, their skill over the zero line of the fit runs (the
strongest batch-blind predictor; higher is better, the ``zero-line`` baseline is 0). Within one
table this is the order of ``mse_all_steps``, since every method there shares the reference;
across benchmarks the skill itself is comparable, so the summaries give its median and its
pooled value ``1 - sum MSE / sum MSE_ref`` (a mean of an unbounded-below skill is ruled by its
worst outlier). A cell rescaled in-sample (the published TracIn-CP protocol) is shown but never
ranked, and ``lds_final`` over fewer than :data:`~tdabench.scores.LDS_MIN_RUNS` evaluation runs is
shown, marked low-power, and never ranked or summarized.

A method run with several seeds fills one row: its scores are the means over the seeds, each
interval spans the seeds' intervals (so it covers their spread), and the row shows the spread
of the seeds' means beside it.

Every renderer (markdown, HTML, CSV, JSON) reads these objects, so the orderings, the ranks
and the best-per-column marks are computed once and agree everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from tdabench.data import SPLITS
from tdabench.leaderboard.collect import Entry, group_of
from tdabench.leaderboard.fmt import display
from tdabench.run.report import generalization_gaps
from tdabench.results.record import CellResult
from tdabench.scores import LDS_MIN_RUNS, Score
from tdabench.scores import spec as score_spec

RANK_METRIC = "skill_mse"
TABLE_SCORES = ("skill_mse", "skill_mse_early", "skill_mse_mid", "skill_mse_late", "lds_final", "mse_all_steps", "mae_all_steps",
                "spearman_final", "spearman_steps")
#: The per-phase skills (the first 10% of steps, the rest of the first half, the second half).
PHASES = ("skill_mse_early", "skill_mse_mid", "skill_mse_late")
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
    """One method in one table: its result (over its seeds), its rank (ranked rows only) and its
    generalization gap.

    Attributes:
        seeds: the seeds its cells were computed with.
        spread: score -> (lowest, highest) of the seeds' means, with two or more seeds.
        retrain_s: what retraining the split's evaluation runs costs (its runs x the benchmark's
            recording seconds per run), where the benchmark records it.
    """

    entry: Entry
    rank: int | None
    gap: dict[str, float] | None
    seeds: tuple[int, ...] = (0,)
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    retrain_s: float | None = None

    @property
    def reference(self) -> bool:
        """A reference point (``retrain``): shown, never ranked."""
        return not self.result.ranked

    @property
    def result(self) -> CellResult:
        """The cell's result."""
        return self.entry.result

    @property
    def ranked(self) -> bool:
        """Scored out of sample: an ok cell with a defined skill."""
        return ranking_value(self) is not None


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _score(name: str) -> Callable[[Row], float | None]:
    def get(row: Row) -> float | None:
        s = row.result.scores.get(name)
        if name == "lds_final" and low_power(row):
            return None
        return _finite(s.mean) if row.result.status == "ok" and s is not None else None

    return get


def low_power(row: Row) -> bool:
    """Whether the row's ``lds_final`` correlates over too few evaluation runs to be ranked."""
    return row.result.n_runs < LDS_MIN_RUNS


def ranking_value(row: Row) -> float | None:
    """The skill a row is ranked by; None for failed, n/a, undefined, in-sample and reference cells."""
    return None if row.result.in_sample or not row.result.ranked else _score(RANK_METRIC)(row)


def _gap(row: Row) -> float | None:
    return _finite(row.gap.get("mse_all_steps")) if row.gap else None


def _attr(name: str) -> Callable[[Row], float | None]:
    return lambda row: _finite(getattr(row.result, name)) if row.result.status == "ok" else None


def borrowed_s(fit_info: Mapping[str, Any]) -> float | None:
    """Seconds of cached work (score tables, curvature factors) a cell read instead of computing,
    as they cost when computed; None when it read cached work of unknown cost (older results)."""
    inner = fit_info.get("inner")  # the residual forms nest their inner method's info
    info = inner if isinstance(inner, Mapping) else fit_info
    if info.get("cached_table_seconds") is not None:
        return float(info["cached_table_seconds"])
    cached = str(info.get("score_tables_cached", "0 of"))
    return 0.0 if cached.startswith("0 of") and "cached_table_seconds" not in info else None


def method_s(row: Row) -> float | None:
    """The method's cost as if it ran alone: fit plus simulate seconds, plus the cached work it read
    (a `-calibrated` or `-residual` form reading its raw form's score tables pays for them too)."""
    r = row.result
    if r.status != "ok" or r.fit_s is None or r.simulate_s is None:
        return None
    borrowed = borrowed_s(r.fit_info)
    return None if borrowed is None else r.fit_s + r.simulate_s + borrowed


def speedup(row: Row) -> float | None:
    """How many times faster than retraining the evaluation runs the method's fit and simulate are."""
    cost = method_s(row)
    return _finite(row.retrain_s / cost) if cost and row.retrain_s else None


COLUMNS: tuple[Column, ...] = (
    *(Column(m, m, score_spec(m).better, _score(m), "score") for m in TABLE_SCORES),
    Column("gap_mse", "gap (Δ mse)", "min", _gap, "gap"),
    Column("fit_s", "fit s", "min", _attr("fit_s"), "cost"),
    Column("simulate_s", "simulate s", "min", _attr("simulate_s"), "cost"),
    Column("peak_mem_mb", "peak MiB", "min", _attr("peak_mem_mb"), "cost"),
    Column("speedup", "× retrain", "max", speedup, "speedup"),
)


@dataclass(frozen=True)
class Table:
    """The methods on one (benchmark, trajectory, split), best first.

    Attributes:
        best: column key -> methods holding the best value (only when two or more rows have one).
        headroom: the split's headroom diagnostics (``CellResult.reference``), where known.
    """

    group: str
    benchmark: str
    trajectory: str
    split: str
    rows: tuple[Row, ...]
    best: dict[str, frozenset[str]] = field(default_factory=dict)
    headroom: dict[str, float | None] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int] | None:
        """(evaluation runs, test examples) of the ok rows, if any."""
        ok = [r.result for r in self.rows if r.result.status == "ok"]
        return (ok[0].n_runs, ok[0].n_test) if ok else None


def _order_key(row: Row) -> tuple[int, float, str]:
    r = row.result
    v = ranking_value(row)
    if v is not None:
        return (0, -v, r.method)
    if r.status == "ok":
        return (1, 0.0, r.method)  # in-sample or undefined: after the ranked rows
    return (2 + _STATUS_ORDER[r.status], 0.0, r.method)


def best_marks(rows: Sequence[Row]) -> dict[str, frozenset[str]]:
    """Methods whose value of a column equals the best one as displayed (ties all marked); in-sample and reference rows never."""
    marks: dict[str, frozenset[str]] = {}
    for col in COLUMNS:
        got = [(row.result.method, col.value(row)) for row in rows if not row.result.in_sample and row.result.ranked]
        vals = [(m, v) for m, v in got if v is not None]
        if len(vals) < 2:
            continue
        best = min(v for _, v in vals) if col.better == "min" else max(v for _, v in vals)
        shown = display(col.kind, best)
        marks[col.key] = frozenset(m for m, v in vals if display(col.kind, v) == shown)
    return marks


def combine_seeds(entries: Sequence[Entry]) -> tuple[Entry, tuple[int, ...], dict[str, tuple[float, float]]]:
    """One method's cells of one table over its seeds: (an entry holding the means, with each
    interval spanning the seeds' intervals; the seeds; the spread of the seeds' means)."""
    entries = sorted(entries, key=lambda e: e.result.seed)
    seeds = tuple(e.result.seed for e in entries)
    ok = [e for e in entries if e.result.status == "ok"]
    if len(entries) == 1 or len(ok) < len(entries):  # one seed, or a seed that failed: show the first problem as is
        first = next((e for e in entries if e.result.status != "ok"), entries[0])
        return first, seeds, {}
    scores: dict[str, Score] = {}
    spread: dict[str, tuple[float, float]] = {}
    for name in ok[0].result.scores:
        got = [e.result.scores[name] for e in ok if name in e.result.scores]
        means = np.array([g.mean for g in got], dtype=float)
        los, his = np.array([g.ci95[0] for g in got], dtype=float), np.array([g.ci95[1] for g in got], dtype=float)
        fin = means[np.isfinite(means)]
        mean = float(fin.mean()) if fin.size else float("nan")
        ci = (float(np.nanmin(los)) if np.isfinite(los).any() else float("nan"), float(np.nanmax(his)) if np.isfinite(his).any() else float("nan"))
        scores[name] = Score(mean, float(fin.std()) if fin.size else float("nan"), ci, got[0].n)
        if fin.size >= 2:
            spread[name] = (float(fin.min()), float(fin.max()))
    r0 = ok[0].result
    combined = dataclasses.replace(r0, scores=scores, fit_s=_mean_of(e.result.fit_s for e in ok),
                                   simulate_s=_mean_of(e.result.simulate_s for e in ok), peak_mem_mb=_max_of(e.result.peak_mem_mb for e in ok))
    return Entry(combined, ok[0].path), seeds, spread


def _mean_of(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(np.mean(vals)) if vals else None


def _max_of(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(max(vals)) if vals else None


def build_tables(entries: Sequence[Entry], run_seconds: Mapping[str, float] | None = None) -> list[Table]:
    """One table per (benchmark, trajectory, split), sorted by group, benchmark, trajectory, split order;
    ``run_seconds``: benchmark -> what recording one of its runs cost (for the speed-up over retraining)."""
    run_seconds = run_seconds or {}
    gaps = generalization_gaps([e.result for e in entries])
    cells: dict[tuple[str, str, str], dict[str, list[Entry]]] = {}
    for e in entries:
        cells.setdefault((e.result.benchmark, e.result.trajectory, e.result.split), {}).setdefault(e.result.method, []).append(e)
    tables = []
    for (bench, traj, split), by_method in cells.items():
        combined = [combine_seeds(es) for es in by_method.values()]
        per_run = run_seconds.get(bench)
        rows = sorted((Row(e, None, gaps.get((bench, traj, e.result.method, split)), seeds, spread,
                           per_run * e.result.n_runs if per_run and e.result.n_runs else None) for e, seeds, spread in combined),
                      key=_order_key)
        values = [ranking_value(r) for r in rows]
        ranked = [-v for v in values if v is not None]
        it = iter(rankdata(ranked, method="min").astype(int).tolist() if ranked else [])
        rows = [dataclasses.replace(r, rank=next(it) if v is not None else None) for r, v in zip(rows, values)]
        ref = next((dict(r.result.reference) for r in rows if r.result.status == "ok" and r.result.reference), {})
        tables.append(Table(group_of(bench), bench, traj, split, tuple(rows), best_marks(rows), ref))
    return sorted(tables, key=table_sort_key)


def table_sort_key(t: Table) -> tuple[str, str, int, str, int, str]:
    """Group, benchmark, loss before other trajectories, then the canonical split order."""
    split_pos = SPLITS.index(t.split) if t.split in SPLITS else len(SPLITS)
    return (t.group, t.benchmark, 0 if t.trajectory == "loss" else 1, t.trajectory, split_pos, t.split)


def _splits(tables: Sequence[Table]) -> list[str]:
    return sorted({t.split for t in tables}, key=lambda s: SPLITS.index(s) if s in SPLITS else len(SPLITS))


@dataclass(frozen=True)
class MeanRank:
    """A method's mean rank by ``skill_mse`` over the benchmarks that ranked it, per split.

    Attributes:
        by_split: split -> (mean rank, benchmarks ranked in, benchmarks with that split).
    """

    method: str
    by_split: dict[str, tuple[float | None, int, int]]


def mean_ranks(tables: Sequence[Table], trajectory: str) -> list[MeanRank]:
    """Mean rank (ties averaged) of each method over the benchmarks of ``tables`` for ``trajectory``.

    A method that is n/a, failed, undefined or in-sample on a benchmark is not ranked there;
    the count beside each mean says over how many benchmarks it was taken. Sorted by the
    ``seen`` mean rank (then the first split that has one), unranked methods last.
    """
    tables = [t for t in tables if t.trajectory == trajectory]
    splits = _splits(tables)
    methods = sorted({r.result.method for t in tables for r in t.rows if r.result.ranked})  # references are never summarized
    ranks: dict[tuple[str, str], list[float]] = {}
    totals = {s: 0 for s in splits}
    for t in tables:
        totals[t.split] += 1
        values = [(r.result.method, ranking_value(r)) for r in t.rows]
        scored = [(m, v) for m, v in values if v is not None]
        if not scored:
            continue
        avg = rankdata([-v for _, v in scored], method="average")
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


@dataclass(frozen=True)
class MeanSkill:
    """A method's summary skill over the benchmarks that scored it, per split.

    Attributes:
        skill: split -> (median skill, benchmarks, benchmarks with that split).
        pooled: split -> ``1 - sum_b MSE_b / sum_b MSE_ref,b`` over those benchmarks (robust to one
            benchmark's outlier, weighted by how much each has to attribute).
        lds: split -> median lds_final over the benchmarks where it is defined and not low-power.
        beats: split -> benchmarks where the skill's 95% CI lies above 0.
        phases: phase score (:data:`PHASES`) -> median over the benchmarks, seen split.
    """

    method: str
    skill: dict[str, tuple[float | None, int, int]]
    lds: dict[str, float | None]
    beats: dict[str, int]
    pooled: dict[str, float | None] = field(default_factory=dict)
    phases: dict[str, float | None] = field(default_factory=dict)


def _exact(x: float | None) -> float | None:
    """``x`` with float round-off around 0 (the zero line against itself) shown as 0."""
    return None if x is None else 0.0 if abs(x) < 1e-12 else x


def _pooled(rows: Sequence[Row]) -> float | None:
    """``1 - sum MSE / sum MSE_ref`` over ``rows`` (each with its split's reference MSE)."""
    num = den = 0.0
    for r in rows:
        mse, ref = r.result.scores.get("mse_all_steps"), r.result.reference.get("mse_reference")
        if mse is None or ref is None or not math.isfinite(mse.mean) or not math.isfinite(ref):
            return None
        num, den = num + mse.mean, den + ref
    return _exact(1.0 - num / den) if rows and den > 0 else None


def mean_skills(tables: Sequence[Table], trajectory: str, excluded: frozenset[str] = frozenset()) -> list[MeanSkill]:
    """Median and pooled skill and median LDS per method and split over ``tables`` for ``trajectory``
    (benchmarks in ``excluded``, those that do not meet the bank's targets, left out), best seen skill first."""
    tables = [t for t in tables if t.trajectory == trajectory and t.benchmark not in excluded]
    splits = _splits(tables)
    methods = sorted({r.result.method for t in tables for r in t.rows if r.result.ranked})  # references are never summarized
    totals = {s: sum(t.split == s for t in tables) for s in splits}
    out = []
    for m in methods:
        skill, lds, beats, pooled = {}, {}, {}, {}
        phases: dict[str, float | None] = {}
        for s in splits:
            rows = [r for t in tables if t.split == s for r in t.rows if r.result.method == m and r.ranked]
            vals = [v for v in (ranking_value(r) for r in rows) if v is not None]
            skill[s] = (_exact(float(np.median(vals))) if vals else None, len(vals), totals[s])
            pooled[s] = _pooled(rows)
            ld = [v for v in (_score("lds_final")(r) for r in rows) if v is not None]
            lds[s] = float(np.median(ld)) if ld else None
            beats[s] = sum(1 for r in rows if r.result.scores[RANK_METRIC].ci95[0] > 0)
            if s == "seen":
                got = {p: [v for v in (_score(p)(r) for r in rows) if v is not None] for p in PHASES}
                phases = {p: _exact(float(np.median(v))) if v else None for p, v in got.items()}
        out.append(MeanSkill(m, skill, lds, beats, pooled, phases))

    def key(ms: MeanSkill) -> tuple[float, ...]:
        return tuple(-v[0] if v[0] is not None else math.inf for v in ms.skill.values()) + (0.0,)

    return sorted(out, key=lambda ms: (key(ms), ms.method))
