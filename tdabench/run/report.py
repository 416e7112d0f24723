"""Views of results: the generalization gap, the terminal table and the ``--json`` document."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from tdabench.data import SPLITS
from tdabench.results.record import CellResult
from tdabench.scores import SCORE_NAMES, SCORES

JSON_SCHEMA = "tdabench.run/2"
TABLE_SCORES = ("mse_all_steps", "skill_mse", "lds_final", "spearman_final", "spearman_steps")


def generalization_gaps(results: Sequence[CellResult]) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """(benchmark, trajectory, method, split) -> {score: unseen mean - seen mean}, for unseen splits."""
    seen = {(r.benchmark, r.trajectory, r.method): r for r in results if r.split == "seen" and r.status == "ok"}
    gaps: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for r in results:
        base = seen.get((r.benchmark, r.trajectory, r.method))
        if r.split == "seen" or r.status != "ok" or base is None:
            continue
        gaps[(r.benchmark, r.trajectory, r.method, r.split)] = {
            m: r.scores[m].mean - base.scores[m].mean for m in SCORE_NAMES
            if m in r.scores and m in base.scores and math.isfinite(r.scores[m].mean - base.scores[m].mean)  # undefined: left out, never NaN in JSON
        }
    return gaps


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"


def results_table(results: Sequence[CellResult]) -> str:
    """A plain-text table, one row per cell, grouped by benchmark, trajectory and split."""
    gaps = generalization_gaps(results)
    rows = []
    for r in sorted(results, key=lambda r: (r.benchmark, r.trajectory, SPLITS.index(r.split), _sort_key(r), r.method)):
        if r.status == "ok":
            cells = [f"{_fmt(r.scores[m].mean)} ± {_fmt(r.scores[m].std, 2)}" if m in r.scores else "n/a" for m in TABLE_SCORES]
            gap = gaps.get((r.benchmark, r.trajectory, r.method, r.split), {}).get("mse_all_steps")
            note = f"gap {_fmt(gap, 3)}" if gap is not None else ""
            timing = f"{_fmt(r.fit_s, 3)}s / {_fmt(r.simulate_s, 3)}s"
        else:
            cells = ["n/a"] * len(TABLE_SCORES)
            note = (r.reason if r.status == "n/a" else r.error) or ""
            timing = ""
        rows.append([r.benchmark, r.trajectory, r.split, r.method, r.status, *cells, timing, note])
    headers = ["benchmark", "trajectory", "split", "method", "status", *TABLE_SCORES, "fit / sim", "note"]
    return tabulate(rows, headers=headers, tablefmt="simple")


def _sort_key(r: CellResult) -> float:
    """Best skill first (the zero line is 0), then unscored rows."""
    if r.status != "ok" or "skill_mse" not in r.scores:
        return math.inf
    v = r.scores["skill_mse"].mean
    return -v if math.isfinite(v) else math.inf


def results_document(results: Sequence[CellResult]) -> dict[str, Any]:
    """The machine-readable output of ``tdabench run --json`` (docs/formats.md)."""
    gaps = generalization_gaps(results)
    out = []
    for r in results:
        d = r.to_dict()
        d["generalization_gap"] = gaps.get((r.benchmark, r.trajectory, r.method, r.split))
        out.append(d)
    return {
        "schema": JSON_SCHEMA,
        "result_schema": CellResult.SCHEMA,
        "score_keys": list(SCORE_NAMES),
        "scores": {k: {"better": s.better, "unit": s.unit, "description": s.description} for k, s in SCORES.items()},
        "results": out,
    }
