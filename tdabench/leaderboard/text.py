"""Text the renderers share: the legend, how ranks are taken, titles and headings."""

from __future__ import annotations

from tdabench.leaderboard.aggregate import RANK_METRIC, Table

LEGEND = (
    f"Methods are ranked by `{RANK_METRIC}`, their skill over the mean trajectory of the fit runs: "
    "`1 - mse_all_steps / mse_all_steps(mean trajectory)` on the same trajectories (higher is better; "
    "`mean-trajectory` is the zero line, and a method below 0 has not shown it uses the data). "
    "`lds_final` is the linear datamodeling score (Spearman across evaluation runs of predicted vs true final "
    "values, per test example; undefined for batch-blind predictions). Score cells read "
    "*mean ± std [95% bootstrap CI]*: std over trajectories (over evaluation runs for "
    "`spearman_final`, over test examples for `lds_final`), CI by resampling test examples (paired for "
    "the skill). **Bold** marks the best value of a column. The gap (Δ mse) is the split's mean "
    "`mse_all_steps` minus the same method's on `seen`; fit and simulate are wall seconds, peak "
    "MiB the growth of resident memory. *n/a* rows give the reason the method cannot serve the split; "
    "*failed* rows give the error; *in-sample* rows were rescaled on the split's own truth (the published "
    "TracIn-CP protocol) and are never ranked."
)
RANK_HOW = (
    f"Each (benchmark, split) table ranks the methods scored there by `{RANK_METRIC}` "
    "(1 = best, ties averaged); an entry is a method's mean rank and, in parentheses, over how many "
    "of the benchmarks it was ranked. n/a, failed, undefined and in-sample cells are not ranked."
)
SKILL_HOW = (
    f"Mean `{RANK_METRIC}` over the benchmarks that scored the method (in parentheses: how many, and "
    "on how many the skill's 95% CI lies above 0); `mean-trajectory` is 0 by construction. "
    "`lds` is the mean `lds_final` where it is defined."
)
HEADROOM_HOW = (
    "How much each benchmark leaves to attribute (loss, seen split): `mean traj / constant` is the mean "
    "trajectory's `mse_all_steps` over holding the initial value (near 1: the batch-blind baseline explains "
    "nothing of how runs move), and `share around mean` the share of the runs' change that lies around the "
    "evaluation runs' own mean change (0: every run moves alike, nothing to attribute)."
)


def esc(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def group_title(group: str) -> str:
    """``builtin-it`` -> ``builtin/it``: the id prefix a group gathers."""
    return group.replace("-", "/", 1)


def table_heading(table: Table) -> str:
    """``loss · seen (5 runs × 24 test examples; mean traj / constant 0.83)``."""
    shape = table.shape
    parts = [f"{shape[0]} runs × {shape[1]} test examples"] if shape else []
    ratio = table.headroom.get("reference_over_constant")
    if ratio is not None:
        parts.append(f"mean traj / constant {ratio:.3g}")
    return f"{table.trajectory} · {table.split}" + (f" ({'; '.join(parts)})" if parts else "")
