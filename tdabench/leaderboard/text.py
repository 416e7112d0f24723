"""Text the renderers share: the legend, how ranks are taken, titles and headings."""

from __future__ import annotations

from tdabench.leaderboard.aggregate import RANK_METRIC, Table

LEGEND = (
    f"Methods are ranked by mean `{RANK_METRIC}` (lower is better). Score cells read "
    "*mean ± std [95% bootstrap CI]*: std over trajectories (over evaluation runs for "
    "`spearman_final`), CI by resampling test examples. **Bold** marks the best value of a column "
    "(lowest error, cost and gap; highest Spearman). The gap (Δ mse) is the split's mean "
    f"`{RANK_METRIC}` minus the same method's on `seen`; fit and simulate are wall seconds, peak "
    "MiB the growth of resident memory. *n/a* rows give the reason the method "
    "cannot serve the split; *failed* rows give the error."
)
RANK_HOW = (
    f"Each (benchmark, split) table ranks the methods scored there by mean `{RANK_METRIC}` "
    "(1 = best, ties averaged); an entry is a method's mean rank and, in parentheses, over how many "
    "of the benchmarks it was ranked. n/a, failed and undefined cells are not ranked."
)


def esc(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def group_title(group: str) -> str:
    """``builtin-it`` -> ``builtin/it``: the id prefix a group gathers."""
    return group.replace("-", "/", 1)


def table_heading(table: Table) -> str:
    """``loss · seen (5 runs × 24 test examples)``."""
    shape = table.shape
    size = f" ({shape[0]} runs × {shape[1]} test examples)" if shape else ""
    return f"{table.metric} · {table.split}{size}"
