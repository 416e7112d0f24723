"""Views of results: the generalization gap, the terminal table and the ``--json`` document."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from tdabench.data import SPLITS
from tdabench.metrics import METRIC_NAMES
from tdabench.results import SCHEMA_VERSION, CellResult

JSON_SCHEMA = "tdabench.run/1"
TABLE_METRICS = ("mse_all_steps", "mae_all_steps", "spearman_final", "spearman_steps")


def generalization_gaps(results: Sequence[CellResult]) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """(benchmark, metric, method, split) -> {metric: unseen mean - seen mean}, for unseen splits."""
    seen = {(r.benchmark, r.metric, r.method): r for r in results if r.split == "seen" and r.status == "ok"}
    gaps: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for r in results:
        base = seen.get((r.benchmark, r.metric, r.method))
        if r.split == "seen" or r.status != "ok" or base is None:
            continue
        gaps[(r.benchmark, r.metric, r.method, r.split)] = {
            m: r.metrics[m].mean - base.metrics[m].mean for m in METRIC_NAMES if m in r.metrics and m in base.metrics
        }
    return gaps


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"


def results_table(results: Sequence[CellResult]) -> str:
    """A plain-text table, one row per cell, grouped by benchmark, metric and split."""
    gaps = generalization_gaps(results)
    rows = []
    for r in sorted(results, key=lambda r: (r.benchmark, r.metric, SPLITS.index(r.split), _sort_key(r), r.method)):
        if r.status == "ok":
            cells = [f"{_fmt(r.metrics[m].mean)} ± {_fmt(r.metrics[m].std, 2)}" for m in TABLE_METRICS]
            gap = gaps.get((r.benchmark, r.metric, r.method, r.split), {}).get("mse_all_steps")
            note = f"gap {_fmt(gap, 3)}" if gap is not None else ""
            timing = f"{_fmt(r.fit_s, 3)}s / {_fmt(r.simulate_s, 3)}s"
        else:
            cells = ["n/a"] * len(TABLE_METRICS)
            note = (r.reason if r.status == "n/a" else r.error) or ""
            timing = ""
        rows.append([r.benchmark, r.metric, r.split, r.method, r.status, *cells, timing, note])
    headers = ["benchmark", "metric", "split", "method", "status", *TABLE_METRICS, "fit / sim", "note"]
    return tabulate(rows, headers=headers, tablefmt="simple")


def _sort_key(r: CellResult) -> float:
    if r.status != "ok":
        return math.inf
    v = r.metrics["mse_all_steps"].mean
    return v if math.isfinite(v) else math.inf


def results_document(results: Sequence[CellResult]) -> dict[str, Any]:
    """The machine-readable output of ``tdabench run --json`` (docs/formats.md)."""
    gaps = generalization_gaps(results)
    out = []
    for r in results:
        d = r.to_dict()
        d["generalization_gap"] = gaps.get((r.benchmark, r.metric, r.method, r.split))
        out.append(d)
    return {"schema": JSON_SCHEMA, "result_schema_version": SCHEMA_VERSION, "metric_keys": list(METRIC_NAMES), "results": out}
