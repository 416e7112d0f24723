"""Where the library methods' damping choice lands in its grid: first, inside or last candidate.

    python scripts/damping_choices.py results/bank                 # every version found
    python scripts/damping_choices.py results/bank --version 2     # one method version only

Reads the result files of ``tdabench run`` (``<bench>/<trajectory>/<split>/<method>/seed-0.json``)
and counts, per method, the cells whose validation choice (the lowest ``variant_val_mse``, nested
under ``inner`` for the residual forms) is the first, an inner or the last of its candidates, by
the rule of the leaderboard's grid-edge note (``tdabench.leaderboard.notes.grid_edge``). Cells: loss, every split of the counterfactual tier and the
``seen`` split of the others, as docs/methods.md ("Where the choice lands") counts them.
A choice at an end means the grid, not only the method, set the score.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tdabench.leaderboard.notes import grid_edge

POSITIONS = ("first", "inside", "last")


def position(fit_info: dict[str, Any]) -> str | None:
    """Where the validation choice sits in the grid, by the leaderboard's own rule (``grid_edge``):
    first, last or inside; None for a cell without a grid of three or more candidates."""
    info = fit_info.get("inner", fit_info)
    if len(info.get("variant_val_mse") or []) < 3:
        return None
    note = grid_edge(fit_info)
    return "first" if "the first of" in note else "last" if "the last of" in note else "inside"


def count(root: Path, version: str | None) -> dict[str, Counter[str]]:
    """Per method, how often the choice lands first, inside and last."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for path in sorted(root.glob("*/loss/*/*/seed-0.json")):
        bench, split = path.parts[-5], path.parts[-3]
        if "__cf__" not in bench and split != "seen":
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("status") != "ok" or (version is not None and str(doc.get("method_version")) != version):
            continue
        where = position(doc.get("fit_info") or {})
        if where is not None:
            counts[str(doc["method"])][where] += 1
    return counts


def main() -> None:
    """Print the table docs/methods.md shows."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="a results directory written by `tdabench run --out`")
    ap.add_argument("--version", help="count only results of this method version")
    args = ap.parse_args()
    counts = count(args.results, args.version)
    print("| method | first | inside | last |\n| --- | --- | --- | --- |")
    for method in sorted(counts):
        c = counts[method]
        total = sum(c.values())
        print(f"| `{method}` | " + " | ".join(f"{c[p]} of {total}" if p == "last" else str(c[p]) for p in POSITIONS) + " |")


if __name__ == "__main__":
    main()
