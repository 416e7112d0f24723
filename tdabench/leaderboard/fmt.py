"""Fixed number formatting, so that every regeneration prints the same characters."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tdabench.scores import Score


def num(x: float | None, sig: int = 4) -> str:
    """``sig`` significant digits; exponent form outside [1e-3, 1e4); ``n/a`` for missing."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"  # never "-0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.{sig - 1}e}"
    return f"{x:.{sig}g}"


def signed(x: float | None, sig: int = 3) -> str:
    """Like :func:`num` with an explicit sign (for differences)."""
    text = num(x, sig)
    return text if text in ("n/a", "0") or text.startswith("-") else "+" + text


def score_parts(s: Score | None) -> tuple[str, str, str]:
    """(mean, ± std, [95% CI]) of a score; ``undefined`` when the metric is nowhere defined,
    ``–`` when the result does not have it (a result written before the score existed)."""
    if s is None:
        return ("–", "", "")
    if not math.isfinite(s.mean):
        return ("undefined", "", "")
    return (num(s.mean), f"± {num(s.std, 2)}", f"[{num(s.ci95[0])}, {num(s.ci95[1])}]")


def display(kind: str, x: float | None) -> str:
    """How a value of a column of ``kind`` (score, gap, cost) is shown."""
    if kind == "gap":
        return signed(x)
    if kind == "cost":
        return cost(x)
    if kind == "speedup":
        return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}×"
    return num(x)


def cost(x: float | None) -> str:
    """Seconds or MiB: plain decimals (timings are recorded to 1e-4 s), no exponent."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.0f}"


def rank_text(mean: float | None, k: int, n: int) -> str:
    """A mean-rank cell: the mean rank over the ``k`` of ``n`` benchmarks that ranked the method."""
    return f"{mean:.2f} ({k}/{n})" if mean is not None else f"– (0/{n})"


def skill_text(mean: float | None, k: int, n: int, beats: int) -> str:
    """A mean-skill cell: the mean over ``k`` of ``n`` benchmarks, and on how many the CI lies above 0."""
    return f"{num(mean)} ({k}/{n}, >0: {beats})" if mean is not None else f"– (0/{n})"


#: The scores whose seed spread the pages show (every score's is in the JSON export).
SPREAD_SCORES = ("skill_mse", "lds_final", "mse_all_steps")


def spread_text(spread: tuple[float, float] | None, n_seeds: int) -> str:
    """``seeds [0.41, 0.52]``: the lowest and highest of the seeds' means, or ''."""
    return f"{n_seeds} seeds [{num(spread[0], 3)}, {num(spread[1], 3)}]" if spread else ""


def pooled_text(x: float | None) -> str:
    """A pooled skill cell."""
    return num(x) if x is not None else "–"


#: The ``params`` values of the gradient families' shared option (every parameter, the linear
#: layers, the output layer); rows that used one say which beside the method.
PARAM_SETS: tuple[str, ...] = ("all", "linear", "last-layer")


def param_set(config: Mapping[str, Any]) -> str:
    """``" [params: linear]"`` for a result whose config chose a gradient parameter set, else ''."""
    value = config.get("params")
    return f" [params: {value}]" if isinstance(value, str) and value in PARAM_SETS else ""
