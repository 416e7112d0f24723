"""The mislabel-identification section's content: one table per label-noise benchmark, from the
``tdabench mislabel`` result files of a collection (markdown.py and html.py render it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tdabench.leaderboard.fmt import num
from tdabench.results.mislabel import FIX_FRACTION, FRACTIONS, MislabelResult

HOW = (f"Each ranking orders the training examples of a benchmark whose labels were partly flipped, most suspect first: a method "
       f"by its self-influence (the predicted effect of an example on its own loss; most negative first), the baselines at random "
       f"(one seeded draw; its expectation finds a share f at f inspected, auc 0.5) and by each example's own loss at the end of "
       f"training. *found@f*: share of the flipped labels among the first f of the ranking. *auc*: dattri's mislabel_detection_auc "
       f"(area under true- against false-positive rate as more are inspected). Then the top {FIX_FRACTION:.0%} is inspected, its "
       f"flipped examples relabelled, and the model retrained on the benchmark's evaluation runs: accuracy on the task's clean test "
       f"set before and after, and the *gain*. *beats loss*: more flips found at {FRACTIONS[-1]:g} than the training-loss baseline.")
REFERENCE = "training-loss"


def by_benchmark(results: Sequence[MislabelResult]) -> dict[str, list[MislabelResult]]:
    """Each benchmark's rankings, best first (found at the largest fraction, then auc); failures last."""
    out: dict[str, list[MislabelResult]] = {}
    for r in results:
        out.setdefault(r.benchmark, []).append(r)
    last = f"{FRACTIONS[-1]:g}"
    for rs in out.values():
        rs.sort(key=lambda r: (r.status != "ok", -(r.fraction_found.get(last) or 0.0), -(r.auc or 0.0), r.method))
    return out


def _reference_found(rs: Sequence[MislabelResult]) -> float | None:
    ref = next((r for r in rs if r.method == REFERENCE and r.status == "ok"), None)
    return None if ref is None else ref.fraction_found.get(f"{FRACTIONS[-1]:g}")


def rows(rs: Sequence[MislabelResult]) -> list[list[str]]:
    """Text cells: ranking, kind, found@f..., auc, accuracy before/after, gain, beats loss (or the error)."""
    ref = _reference_found(rs)
    out = []
    for r in rs:
        if r.status != "ok":
            out.append([r.method, r.ranker, *["–"] * (len(FRACTIONS) + 4), f"failed: {r.error}"])
            continue
        fx = r.fixing
        found = r.fraction_found.get(f"{FRACTIONS[-1]:g}")
        beats = "" if r.ranker == "baseline" or ref is None or found is None else ("yes" if found > ref else "no")
        out.append([r.method, r.ranker, *(num(r.fraction_found.get(f"{f:g}")) for f in FRACTIONS), num(r.auc),
                    num((fx.get("before") or {}).get("accuracy")), num((fx.get("after") or {}).get("accuracy")), num(r.accuracy_gain),
                    beats or fx.get("reason", "")])
    return out


HEADERS = ("ranking", "kind", *(f"found@{f:g}" for f in FRACTIONS), "auc", "acc before", "acc after", "gain", "beats loss")


def reference_line(rs: Sequence[MislabelResult]) -> str:
    fx = next((r.fixing for r in rs if r.fixing.get("all_fixed")), None)
    if fx is None:
        return ""
    b, a = fx["before"], fx["all_fixed"]
    return (f"Retrained on {len(fx.get('retrained_runs', []))} evaluation run(s): accuracy {num(b['accuracy'])} (loss {num(b['loss'])}) "
            f"before fixing; {num(a['accuracy'])} (loss {num(a['loss'])}) with every flip fixed. "
            f"{rs[0].n_flipped} of {rs[0].n_candidates} labels flipped.")


def to_json(results: Sequence[MislabelResult]) -> list[dict[str, Any]]:
    """JSON rows: everything but the rankings themselves."""
    return [{"benchmark": r.benchmark, "ranking": r.method, "kind": r.ranker, "status": r.status, "error": r.error,
             "method_version": r.method_version, "n_candidates": r.n_candidates, "n_flipped": r.n_flipped,
             "fraction_found": dict(r.fraction_found), "auc": r.auc, "fixing": dict(r.fixing), "accuracy_gain": r.accuracy_gain}
            for rs in by_benchmark(results).values() for r in rs]
