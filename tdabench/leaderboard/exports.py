"""CSV and JSON exports of the aggregated table (one row per cell), for other tools."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from tdabench.leaderboard.aggregate import COLUMNS, RANK_METRIC, Row, Table
from tdabench.leaderboard.mislabel import to_json as mislabel_json
from tdabench.leaderboard.model import Leaderboard
from tdabench.leaderboard.published import CITATION, PUBLISHED, PUBLISHED_NOTES
from tdabench.scores import SCORE_NAMES as METRIC_NAMES

JSON_SCHEMA = "tdabench.leaderboard/1"


def _f(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def row_dict(table: Table, row: Row, lb: Leaderboard) -> dict[str, Any]:
    """One cell as exported: identity, rank, every metric, gap, cost, status and provenance."""
    r = row.result
    return {
        "group": table.group,
        "benchmark": r.benchmark,
        "trajectory": r.trajectory,
        "split": r.split,
        "rank": row.rank,
        "method": r.method,
        "method_name": r.method_name,
        "method_version": r.method_version,
        "status": r.status,
        "in_sample": r.in_sample,
        "best": sorted(k for k, ms in table.best.items() if r.method in ms),
        "scores": {m: r.scores[m].to_dict() for m in r.scores},
        "headroom": {k: _f(v) for k, v in sorted(table.headroom.items())} or None,
        "generalization_gap": {k: _f(v) for k, v in sorted(row.gap.items())} if row.gap else None,
        "fit_s": _f(r.fit_s),
        "simulate_s": _f(r.simulate_s),
        "peak_mem_mb": _f(r.peak_mem_mb),
        "n_runs": r.n_runs,
        "n_test": r.n_test,
        "model_size": lb.model_sizes.get(r.benchmark),
        "reason": r.reason,
        "error": r.error,
        "config": r.config,
        "data_hash": r.data_hash,
        "key": r.key,
        "source": lb_source(row),
    }


def lb_source(row: Row) -> str:
    """The result file a row comes from, as given on the command line."""
    return row.entry.path.as_posix()


def to_json(lb: Leaderboard) -> str:
    """The whole leaderboard as one JSON document; ``generated_on`` is its only volatile line."""
    p = lb.provenance
    doc = {
        "schema": JSON_SCHEMA,
        "generated_on": p.generated,
        "command": p.command,
        "rank_score": RANK_METRIC,
        "columns": [{"key": c.key, "header": c.header, "better": c.better} for c in COLUMNS],
        "rows": [row_dict(t, row, lb) for t in lb.tables for row in t.rows],
        "mean_ranks": {
            scope: {
                metric: [
                    {"method": mr.method, "by_split": {s: {"mean_rank": v[0], "ranked": v[1], "benchmarks": v[2]} for s, v in mr.by_split.items()}}
                    for mr in ranks
                ]
                for metric, ranks in by_metric.items()
            }
            for scope, by_metric in lb.ranks.items()
        },
        "mean_skills": {
            scope: {
                traj: [{"method": ms.method, "by_split": {s: {"skill": v[0], "scored": v[1], "benchmarks": v[2], "ci_above_0": ms.beats[s],
                                                              "lds_final": ms.lds[s]} for s, v in ms.skill.items()}}
                       for ms in skills]
                for traj, skills in by_traj.items()
            }
            for scope, by_traj in lb.skills.items()
        },
        "mislabel": mislabel_json(lb.collection.mislabel),
        "left_out": list(lb.problems),
        "published": {
            "citation": CITATION,
            "note": "published numbers, not measured by tdabench",
            "rows": [p_.__dict__ for p_ in PUBLISHED],
            "notes": list(PUBLISHED_NOTES),
        },
        "duplicates": [
            {"cell": list(d.cell), "kept": d.kept.path.as_posix(), "dropped": [e.path.as_posix() for e in d.dropped]}
            for d in lb.collection.duplicates
        ],
        "provenance": {
            "results": p.n_files,
            "digest": p.digest,
            "tdabench_versions": list(p.versions),
            "git": list(p.gits),
            "machines": list(p.machines),
            "commands": list(p.commands),
            "created": list(p.created) if p.created else None,
            "data_hashes": {b: list(h) for b, h in p.data_hashes.items()},
        },
    }
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def to_csv(lb: Leaderboard) -> str:
    """One line per cell; floats in Python's shortest round-trip form; empty where missing."""
    head = ["group", "benchmark", "trajectory", "split", "rank", "method", "method_name", "method_version", "status", "in_sample"]
    for m in METRIC_NAMES:
        head += [f"{m}_mean", f"{m}_std", f"{m}_ci95_lo", f"{m}_ci95_hi", f"{m}_n"]
    head += [f"gap_{m}" for m in METRIC_NAMES]
    head += ["fit_s", "simulate_s", "peak_mem_mb", "n_runs", "n_test", "model_size", "best", "reason", "error", "data_hash", "key", "source"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)

    def v(x: object) -> str:
        if x is None or (isinstance(x, float) and not math.isfinite(x)):
            return ""
        return repr(x) if isinstance(x, float) else str(x)

    for t in lb.tables:
        for row in t.rows:
            r = row.result
            line = [t.group, r.benchmark, r.trajectory, r.split, v(row.rank), r.method, r.method_name, r.method_version, r.status, str(r.in_sample).lower()]
            for m in METRIC_NAMES:
                s = r.scores.get(m)
                line += [v(s.mean), v(s.std), v(s.ci95[0]), v(s.ci95[1]), v(s.n)] if s else [""] * 5
            line += [v((row.gap or {}).get(m)) for m in METRIC_NAMES]
            line += [v(r.fit_s), v(r.simulate_s), v(r.peak_mem_mb), v(r.n_runs), v(r.n_test), v(lb.model_sizes.get(r.benchmark)),
                     " ".join(sorted(k for k, ms in t.best.items() if r.method in ms)), r.reason or "", r.error or "", r.data_hash, r.key, lb_source(row)]
            w.writerow(line)
    return buf.getvalue()
