"""CSV and JSON exports of the aggregated table (one row per method and table), for other tools.

Floats are written to :data:`DIGITS` significant digits (far beyond any interval's width), and
the JSON puts one row per line with what every row of a table shares (headroom, data hash)
given once, so a full bank's exports stay a few megabytes. Neither carries plot samples.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from tdabench.leaderboard.aggregate import COLUMNS, RANK_METRIC, Row, Table, speedup
from tdabench.leaderboard.notes import grid_edge
from tdabench.leaderboard.mislabel import to_json as mislabel_json
from tdabench.leaderboard.model import Leaderboard
from tdabench.leaderboard.published import CITATION, PUBLISHED, PUBLISHED_NOTES
from tdabench.scores import SCORE_NAMES as METRIC_NAMES
from tdabench.scores import Score

JSON_SCHEMA = "tdabench.leaderboard/2"
#: Significant digits of every exported float.
DIGITS = 5


def _f(x: float | None) -> float | None:
    return float(f"{x:.{DIGITS}g}") if x is not None and math.isfinite(x) else None


#: What each score's list holds in the JSON rows.
SCORE_FIELDS = ("mean", "std", "ci95_lo", "ci95_hi", "n")


def _score_row(s: Score) -> list[float | int | None]:
    return [_f(s.mean), _f(s.std), _f(s.ci95[0]), _f(s.ci95[1]), s.n]


def row_dict(table: Table, row: Row) -> dict[str, Any]:
    """One row as exported: identity, rank, every metric, gap, cost, status and provenance. Fields
    that are null, false, empty or a method's own name (``method_name``) are left out (:data:`OPTIONAL`)."""
    r = row.result
    d = {
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
        "reference": not r.ranked,
        "seeds": list(row.seeds),
        "best": sorted(k for k, ms in table.best.items() if r.method in ms),
        "scores": {m: _score_row(r.scores[m]) for m in r.scores},
        "seed_spread": {k: [_f(lo), _f(hi)] for k, (lo, hi) in sorted(row.spread.items())} or None,
        "gap_mse": _f((row.gap or {}).get("mse_all_steps")),
        "fit_s": _f(r.fit_s),
        "simulate_s": _f(r.simulate_s),
        "peak_mem_mb": _f(r.peak_mem_mb),
        "retrain_s": _f(row.retrain_s),
        "speedup": _f(speedup(row)),
        "n_runs": r.n_runs,
        "n_test": r.n_test,
        "reason": r.reason,
        "error": r.error,
        "note": grid_edge(r.fit_info or {}) if r.status == "ok" else None,
        "config": r.config,
        "key": r.key,
    }
    if d["method_name"] == d["method"]:
        del d["method_name"]
    return {k: v for k, v in d.items() if k not in OPTIONAL or v not in (None, False, [], {})}


#: Row fields left out of the JSON when null, false or empty.
OPTIONAL = frozenset({"rank", "in_sample", "reference", "best", "seed_spread", "gap_mse", "fit_s", "simulate_s", "peak_mem_mb", "retrain_s",
                      "speedup", "reason", "error", "note", "config"})


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
        "score_fields": list(SCORE_FIELDS),
        "optional_fields": sorted(OPTIONAL),
        "columns": [{"key": c.key, "header": c.header, "better": c.better} for c in COLUMNS],
        "rows": [row_dict(t, row) for t in lb.tables for row in t.rows],
        "headroom": [{"benchmark": t.benchmark, "trajectory": t.trajectory, "split": t.split, **{k: _f(v) for k, v in sorted(t.headroom.items())}}
                     for t in lb.tables if t.headroom],
        "benchmarks": {b: {"model_size": lb.model_sizes.get(b), **{k: v for k, v in sorted(p.items()) if k != "fit_curve"}}
                       for b, p in sorted(lb.properties.items())},
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
                                                              "pooled": ms.pooled.get(s), "lds_final": ms.lds[s]} for s, v in ms.skill.items()},
                        "phases_seen": ms.phases}
                       for ms in skills]
                for traj, skills in by_traj.items()
            }
            for scope, by_traj in lb.skills.items()
        },
        "mislabel": mislabel_json(lb.collection.mislabel),
        "left_out": list(lb.problems),
        "coverage": {g: [{"method": c.method, "ran": c.ran, "total": c.total, "splits": list(c.splits)} for c in cs]
                     for g, cs in lb.coverage.items()},
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
    rows = doc.pop("rows")
    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
    # One compact line per row: small, and a regeneration's diff shows which rows changed.
    body = ",\n".join(json.dumps(r, ensure_ascii=False, allow_nan=False, separators=(",", ":")) for r in rows)
    return text[:-2] + ',\n "rows": [\n' + body + "\n ]\n}\n"


def to_csv(lb: Leaderboard) -> str:
    """One line per cell; floats in Python's shortest round-trip form; empty where missing."""
    head = ["group", "benchmark", "trajectory", "split", "rank", "method", "method_name", "method_version", "status", "in_sample"]
    for m in METRIC_NAMES:
        head += [f"{m}_mean", f"{m}_std", f"{m}_ci95_lo", f"{m}_ci95_hi", f"{m}_n"]
    head += ["gap_mse_all_steps"]
    head += ["fit_s", "simulate_s", "peak_mem_mb", "retrain_s", "speedup", "seeds", "reference", "n_runs", "n_test", "model_size", "best",
             "reason", "error", "note", "data_hash", "key", "source"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)

    def v(x: object) -> str:
        if x is None or (isinstance(x, float) and not math.isfinite(x)):
            return ""
        return f"{x:.{DIGITS}g}" if isinstance(x, float) else str(x)

    for t in lb.tables:
        for row in t.rows:
            r = row.result
            line = [t.group, r.benchmark, r.trajectory, r.split, v(row.rank), r.method, r.method_name, r.method_version, r.status, str(r.in_sample).lower()]
            for m in METRIC_NAMES:
                s = r.scores.get(m)
                line += [v(s.mean), v(s.std), v(s.ci95[0]), v(s.ci95[1]), v(s.n)] if s else [""] * 5
            line += [v((row.gap or {}).get("mse_all_steps"))]
            line += [v(r.fit_s), v(r.simulate_s), v(r.peak_mem_mb), v(row.retrain_s), v(speedup(row)), " ".join(map(str, row.seeds)),
                     str(not r.ranked).lower(), v(r.n_runs), v(r.n_test), v(lb.model_sizes.get(r.benchmark)),
                     " ".join(sorted(k for k, ms in t.best.items() if r.method in ms)), r.reason or "", r.error or "",
                     grid_edge(r.fit_info or {}) if r.status == "ok" else "", r.data_hash, r.key, lb_source(row)]
            w.writerow(line)
    return buf.getvalue()
