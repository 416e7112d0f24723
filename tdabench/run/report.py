"""Views of results: the generalization gap, the terminal table and the ``--json`` document."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from tdabench.data import SPLITS
from tdabench.results.record import CellResult
from tdabench.scores import LDS_MIN_RUNS, SCORE_NAMES, SCORES

JSON_SCHEMA = "tdabench.run/2"
GRID_SCORES = ("mse_all_steps", "skill_mse", "skill_mse_early", "skill_mse_late", "lds_final", "spearman_final", "spearman_steps")


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


def results_table(results: Sequence[CellResult], *, verbose: bool = False) -> str:
    """The terminal view of a run.

    By default one compact table per benchmark and trajectory: its ``seen`` split's methods
    ranked by skill over the zero line, one line each with the skill's 95% interval, the LDS
    and the time; then one line per other split with each method's skill. With ``verbose``
    the full grid, one row per cell (``--json`` always holds everything).
    """
    if verbose:
        return _grid(results)
    out = []
    for (bench, traj), cells in _by(results, lambda r: (r.benchmark, r.trajectory)).items():
        seen = sorted((r for r in cells if r.split == "seen"), key=lambda r: (_sort_key(r), r.method))
        rows: list[list[object]] = []
        for r in seen:
            if r.status != "ok":
                rows.append(["", r.method, r.status, "", "", "", _clip((r.reason if r.status == "n/a" else r.error) or "")])
                continue
            sk, lds = r.scores.get("skill_mse"), r.scores.get("lds_final")
            ci = f"[{_fmt(sk.ci95[0], 2)}, {_fmt(sk.ci95[1], 2)}]" if sk is not None else ""
            low = "" if lds is None or r.n_runs >= LDS_MIN_RUNS else " (low power)"
            rows.append([len([x for x in rows if x[0]]) + 1, r.method, _fmt(sk.mean if sk else None, 3), ci,
                         _fmt(lds.mean if lds else None, 2) + low, f"{_fmt((r.fit_s or 0) + (r.simulate_s or 0), 3)} s", ""])
        title = f"{bench} ({traj}), seen split: methods ranked by skill over the zero line"
        out.append(title + "\n" + tabulate(rows, headers=["#", "method", "skill", "95% CI", "lds", "time", "note"], tablefmt="simple"))
        others = [s for s in SPLITS if s != "seen" and any(r.split == s for r in cells)]
        if others:
            skill = {(r.method, r.split): r.scores["skill_mse"].mean for r in cells if r.status == "ok" and "skill_mse" in r.scores}
            order = [r.method for r in seen] + sorted({r.method for r in cells} - {r.method for r in seen})
            lines = [f"  {s}: " + ", ".join(f"{m} {_fmt(skill[(m, s)], 3)}" for m in order if (m, s) in skill) for s in others]
            out.append("skill on the other splits:\n" + "\n".join(lines))
    return "\n\n".join(out) + "\n\n(skill = 1 - MSE / MSE of the zero line, the strongest batch-blind predictor; --verbose shows every score of every split)"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _by(results: Sequence[CellResult], key: Any) -> dict[Any, list[CellResult]]:
    out: dict[Any, list[CellResult]] = {}
    for r in sorted(results, key=lambda r: (r.benchmark, r.trajectory != "loss", r.trajectory)):
        out.setdefault(key(r), []).append(r)
    return out


def _grid(results: Sequence[CellResult]) -> str:
    """Every cell, one row each, grouped by benchmark, trajectory and split."""
    gaps = generalization_gaps(results)
    rows = []
    for r in sorted(results, key=lambda r: (r.benchmark, r.trajectory, SPLITS.index(r.split), _sort_key(r), r.method)):
        if r.status == "ok":
            cells = []
            for m in GRID_SCORES:
                sc = r.scores.get(m)
                if sc is None:
                    cells.append("n/a")
                elif SCORES[m].kind == "skill":  # one value over all trajectories: its interval, not a spread
                    cells.append(f"{_fmt(sc.mean)} [{_fmt(sc.ci95[0], 2)}, {_fmt(sc.ci95[1], 2)}]")
                else:
                    cells.append(f"{_fmt(sc.mean)} ± {_fmt(sc.std, 2)}")
            gap = gaps.get((r.benchmark, r.trajectory, r.method, r.split), {}).get("mse_all_steps")
            note = f"gap {_fmt(gap, 3)}" if gap is not None else ""
            timing = f"{_fmt(r.fit_s, 3)}s / {_fmt(r.simulate_s, 3)}s"
        else:
            cells = ["n/a"] * len(GRID_SCORES)
            note = (r.reason if r.status == "n/a" else r.error) or ""
            timing = ""
        rows.append([r.benchmark, r.trajectory, r.split, r.method, r.status, *cells, timing, note])
    headers = ["benchmark", "trajectory", "split", "method", "status", *GRID_SCORES, "fit / sim", "note"]
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
