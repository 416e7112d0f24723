"""The docs/scaling.md table from a run of tests/benchmarks/test_bench_scale.py.

    python -m pytest tests/benchmarks/test_bench_scale.py --benchmark-only --benchmark-json=scale.json
    python scripts/scale_table.py scale.json

Prints, per method: FT and IT unit cost (fit + simulate, wall seconds; CPU seconds in brackets),
the peak memory, and the growth exponent of the fit time in tests x train x steps between the
two shapes (``log(t_IT / t_FT) / log(size_IT / size_FT)``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def rows(doc: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> shape -> the benchmark's extra_info."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for b in doc["benchmarks"]:
        info = b["extra_info"]
        if "method" in info:
            out.setdefault(info["method"], {})[info["shape"]] = info
    return out


def _cell(info: dict[str, Any] | None) -> str:
    if info is None:
        return "not run"
    return f"{info['fit_s']:.1f} + {info['simulate_s']:.2f} s ({info['cpu_s']:.0f} CPU s)"


def _exponent(ft: dict[str, Any] | None, it: dict[str, Any] | None) -> str:
    if not ft or not it or ft["fit_s"] <= 0.05:  # too small to say how it grows
        return "-"
    size = [x["n_test"] * x["n_train"] * x["steps"] for x in (ft, it)]
    return f"{math.log(it['fit_s'] / ft['fit_s']) / math.log(size[1] / size[0]):.2f}"


def table(doc: dict[str, Any]) -> str:
    """The markdown table, one row per method."""
    lines = [
        "| method | FT fit + simulate | IT fit + simulate | peak memory FT / IT | fit-time exponent |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method, by in rows(doc).items():
        ft, it = by.get("ft"), by.get("it")
        mem = " / ".join(f"{x['peak_mb']:.0f} MiB" if x else "-" for x in (ft, it))
        lines.append(f"| {method} | {_cell(ft)} | {_cell(it)} | {mem} | {_exponent(ft, it)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, help="the --benchmark-json file of test_bench_scale.py")
    args = ap.parse_args()
    print(table(json.loads(args.json.read_text())))


if __name__ == "__main__":
    main()
